<?php
// "/": single logout (POST logoutRequest from the CAS server), else log in and show the user.
require __DIR__ . '/_client.php';

// Only the CAS server's host may end sessions; phpCAS resolves REMOTE_ADDR with gethostbyaddr.
phpCAS::handleLogoutRequests(true, array('127.0.0.1', 'localhost'));

try {
    phpCAS::forceAuthentication();
} catch (CAS_AuthenticationException $e) {
    // A ticket that did not validate: say why, as JSON, instead of phpCAS's HTML page.
    ob_clean();
    interop_json(array('user' => null, 'error' => $e->getMessage()), 401);
    exit;
}

interop_json(array(
    'user' => phpCAS::getUser(),
    'attributes' => interop_attributes(),
    'session' => session_id(),
    'version' => phpCAS::getCasClient()->getServerVersion(),
));
