<?php
// "/logout.php[?service=URL]": end the local session and redirect to the CAS server's /logout.
require __DIR__ . '/_client.php';

if (isset($_GET['service']) && $_GET['service'] !== '') {
    phpCAS::logoutWithRedirectService($_GET['service']);
}
phpCAS::logout();
