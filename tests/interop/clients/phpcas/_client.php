<?php
// Shared set-up of the phpCAS test client (tests/interop/test_phpcas.py).
//
// Configured by environment variables:
//   CAS_HOST, CAS_PORT, CAS_CONTEXT ("/"), CAS_VERSION ("2.0", "3.0" or "S1"),
//   CAS_CA_CERT (PEM file of the CA that signed the CAS server's certificate),
//   SERVICE_BASE_URL (e.g. "http://127.0.0.1:8081": phpCAS builds every service URL from it),
//   SESSION_DIR (PHP session files and phpCAS.log go there),
//   PHPCAS_SOURCE (optional path of phpCAS's source/CAS.php).

// phpCAS prints HTML before throwing CAS_AuthenticationException: index.php replaces it.
ob_start();

// PHP warnings and deprecations go to the server's stderr, never into the pages.
ini_set('display_errors', 'stderr');
error_reporting(E_ALL & ~E_DEPRECATED & ~E_USER_DEPRECATED);

function interop_env($name, $default = null)
{
    $value = getenv($name);
    if ($value === false || $value === '') {
        if ($default === null) {
            http_response_code(500);
            header('Content-Type: application/json');
            echo json_encode(array('error' => "environment variable $name is not set"));
            exit;
        }
        return $default;
    }
    return $value;
}

$interopSessionDir = interop_env('SESSION_DIR');
if (!is_dir($interopSessionDir)) {
    mkdir($interopSessionDir, 0700, true);
}
ini_set('session.save_path', $interopSessionDir);
// Several clients share the host 127.0.0.1 and cookies ignore ports: one cookie name per port.
session_name('PHPCAS' . $_SERVER['SERVER_PORT']);

$interopSource = interop_env('PHPCAS_SOURCE', '/usr/share/php/CAS/source/CAS.php');
require_once $interopSource;

/** Minimal PSR-3-like logger: phpCAS only calls info(). */
class InteropFileLogger
{
    private $path;

    public function __construct($path)
    {
        $this->path = $path;
    }

    public function info($message, array $context = array())
    {
        file_put_contents($this->path, $message . "\n", FILE_APPEND | LOCK_EX);
    }
}

phpCAS::setLogger(new InteropFileLogger($interopSessionDir . '/phpCAS.log'));
// phpCAS::error() prints its message only in verbose mode: the tests want to see it.
phpCAS::setVerbose(true);

$interopVersions = array(
    '1.0' => CAS_VERSION_1_0,
    '2.0' => CAS_VERSION_2_0,
    '3.0' => CAS_VERSION_3_0,
    'S1' => SAML_VERSION_1_1,
);
$interopVersionName = interop_env('CAS_VERSION', '3.0');
if (!isset($interopVersions[$interopVersionName])) {
    http_response_code(500);
    echo json_encode(array('error' => "unknown CAS_VERSION $interopVersionName"));
    exit;
}

phpCAS::client(
    $interopVersions[$interopVersionName],
    interop_env('CAS_HOST', '127.0.0.1'),
    (int) interop_env('CAS_PORT', '443'),
    // phpCAS appends "/" itself and collapses only one "//": "/" must become "".
    rtrim((string) getenv('CAS_CONTEXT'), '/'),
    interop_env('SERVICE_BASE_URL')
);
phpCAS::setCasServerCACert(interop_env('CAS_CA_CERT'), true);

/** Print $data as a JSON document. */
function interop_json($data, $status = 200)
{
    http_response_code($status);
    header('Content-Type: application/json');
    header('Cache-Control: no-store');
    echo json_encode($data, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
}

/** The attributes as a JSON object, even when there are none. */
function interop_attributes()
{
    $attributes = phpCAS::getAttributes();
    return empty($attributes) ? new stdClass() : $attributes;
}
