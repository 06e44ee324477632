//! Throwaway TLS certificates for the database launchers ([`crate::postgres`],
//! [`crate::mariadb`]): a certificate authority and a server certificate for `127.0.0.1` /
//! `localhost` signed by it, made with the `openssl` program.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::launch::{LaunchError, Run, chown, find_program, searched};

/// How long one `openssl` step may take.
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(30);

/// The files made by [`make_certificates`], all PEM.
#[derive(Debug, Clone)]
pub(crate) struct Certificates {
    /// The authority's certificate, for a client's `sslrootcert` (and a server's CA file).
    pub(crate) ca: PathBuf,
    /// The server's certificate, valid for `IP:127.0.0.1` and `DNS:localhost`.
    pub(crate) cert: PathBuf,
    /// The server's private key, readable by its owner only.
    pub(crate) key: PathBuf,
}

/// Makes `path` readable by its owner only (PostgreSQL refuses a private key others can read).
fn set_owner_only(path: &Path) -> Result<(), LaunchError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| LaunchError::io(format!("chmod 600 {}", path.display()), e))
}

/// Makes a throwaway certificate authority (valid two days) and a server certificate for
/// `127.0.0.1` / `localhost` signed by it in `dir` (created if missing): `ca.crt`,
/// `server.crt` and `server.key` (mode 600). With `owner`, the dir, the server certificate and
/// the key are given to that system user (the server runs as it when the tests run as root).
///
/// # Errors
/// [`LaunchError::NotInstalled`] without `openssl`; [`LaunchError::Failed`] when a step
/// fails; [`LaunchError::Io`] when a file cannot be written.
pub(crate) async fn make_certificates(
    dir: &Path,
    owner: Option<&str>,
) -> Result<Certificates, LaunchError> {
    let openssl = find_program("openssl", &[]).ok_or_else(|| LaunchError::NotInstalled {
        program: "openssl",
        searched: searched(&[]),
        install: "apt-get install -y openssl",
    })?;
    std::fs::create_dir_all(dir)
        .map_err(|e| LaunchError::io(format!("create {}", dir.display()), e))?;
    let file = |name: &str| dir.join(name).display().to_string();
    let ext = dir.join("server.ext");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        .map_err(|e| LaunchError::io(format!("write {}", ext.display()), e))?;
    let steps: [(&str, Vec<String>); 3] = [
        (
            "openssl (make a test certificate authority)",
            vec![
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=retl test CA",
                "-keyout",
                &file("ca.key"),
                "-out",
                &file("ca.crt"),
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        ),
        (
            "openssl (make the server's certificate request)",
            vec![
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &file("server.key"),
                "-out",
                &file("server.csr"),
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        ),
        (
            "openssl (sign the server's certificate)",
            vec![
                "x509",
                "-req",
                "-in",
                &file("server.csr"),
                "-CA",
                &file("ca.crt"),
                "-CAkey",
                &file("ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &file("server.ext"),
                "-out",
                &file("server.crt"),
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        ),
    ];
    for (step, args) in steps {
        Run::new(step, &openssl)
            .args(args)
            .cwd(dir)
            .timeout(OPENSSL_TIMEOUT)
            .output()
            .await?;
    }
    let certificates = Certificates {
        ca: dir.join("ca.crt"),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    };
    set_owner_only(&certificates.key)?;
    if let Some(user) = owner {
        chown(dir, user)?;
        chown(&certificates.key, user)?;
        chown(&certificates.cert, user)?;
    }
    Ok(certificates)
}
