<?php
// "/whoami.php": is the current PHP session still logged in? Never redirects.
require __DIR__ . '/_client.php';

// isAuthenticated() only reads the session when the URL carries no ticket.
if (phpCAS::isAuthenticated()) {
    interop_json(array(
        'user' => phpCAS::getUser(),
        'attributes' => interop_attributes(),
        'session' => session_id(),
    ));
} else {
    interop_json(array('user' => null, 'session' => session_id()));
}
