//! The Ed25519 keys access tokens are signed with.
//!
//! From `AUTH_JWT_SIGNING_KEYS` ("kid:base64-seed,kid2:…", the first signs, all are published in
//! the JWKS so tokens signed before a rotation stay valid until they expire) or the file named by
//! `AUTH_JWT_SIGNING_KEYS_FILE`; otherwise generated once into `jwt_signing_keys` in the
//! service's secrets directory (`secrets_dir`, default `<data_dir>/secrets/`; mode 0600).

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use switchyard_subgraph_kit::auth::JwtSigner;
use switchyard_subgraph_kit::crypto::{write_secret, SecretsDir};

const FILE_NAME: &str = "jwt_signing_keys";

/// The signing keyring: the first key signs, all verify.
#[derive(Clone, Debug)]
pub struct SigningKeys {
    signers: Vec<JwtSigner>,
}

impl SigningKeys {
    /// Loads keys from the environment, a file, or `secrets` (generated if missing).
    pub fn load(
        secrets: &SecretsDir,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let spec = if let Some(spec) = env("AUTH_JWT_SIGNING_KEYS").filter(|s| !s.trim().is_empty())
        {
            spec
        } else if let Some(file) =
            env("AUTH_JWT_SIGNING_KEYS_FILE").filter(|s| !s.trim().is_empty())
        {
            std::fs::read_to_string(file.trim())
                .map_err(|e| anyhow::anyhow!("AUTH_JWT_SIGNING_KEYS_FILE {file}: {e}"))?
        } else {
            let path = Self::local_path(secrets);
            match std::fs::read_to_string(&path) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let spec = Self::new_entry();
                    write_secret(&path, &spec)?;
                    spec
                }
                Err(e) => anyhow::bail!("{}: {e}", path.display()),
            }
        };
        Self::parse(&spec)
    }

    /// Parses "kid:base64-seed,…".
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let signers = spec
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|entry| {
                let (kid, seed) = entry
                    .split_once(':')
                    .ok_or_else(|| anyhow::anyhow!("signing keys must be `kid:base64-seed`"))?;
                let seed: [u8; 32] = STANDARD
                    .decode(seed.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        anyhow::anyhow!("signing key `{kid}`: seed must be 32 base64 bytes")
                    })?;
                Ok(JwtSigner::from_seed(kid.trim(), seed))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!signers.is_empty(), "no JWT signing keys configured");
        Ok(SigningKeys { signers })
    }

    /// Generates a new signing key in front of the locally stored ones (embedded mode): it signs
    /// from the next start; the old keys stay published so issued tokens remain valid.
    pub fn rotate_local(secrets: &SecretsDir) -> anyhow::Result<String> {
        let path = Self::local_path(secrets);
        let existing = std::fs::read_to_string(&path).unwrap_or_default();
        let entry = Self::new_entry();
        let kid = entry.split(':').next().unwrap_or_default().to_owned();
        let list = if existing.trim().is_empty() {
            entry
        } else {
            Self::parse(&existing)?;
            format!("{entry},{}", existing.trim())
        };
        write_secret(&path, &list)?;
        Ok(kid)
    }

    fn local_path(secrets: &SecretsDir) -> PathBuf {
        secrets.join(FILE_NAME)
    }

    fn new_entry() -> String {
        let signer = JwtSigner::generate(format!(
            "jwt-{}",
            uuid::Uuid::now_v7()
                .simple()
                .to_string()
                .get(..16)
                .unwrap_or("0")
        ));
        format!("{}:{}", signer.kid(), STANDARD.encode(signer.seed()))
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> &JwtSigner {
        &self.signers[0]
    }

    /// All keys (for the JWKS).
    pub fn all(&self) -> &[JwtSigner] {
        &self.signers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        let secrets = SecretsDir::new(None, dir.path());
        let a = SigningKeys::load(&secrets, none).unwrap();
        let b = SigningKeys::load(&secrets, none).unwrap();
        assert_eq!(a.active().kid(), b.active().kid());
        assert_eq!(a.active().seed(), b.active().seed());
        let kid = SigningKeys::rotate_local(&secrets).unwrap();
        let c = SigningKeys::load(&secrets, none).unwrap();
        assert_eq!(c.active().kid(), kid);
        assert_eq!(c.all().len(), 2);
        assert_eq!(c.all()[1].kid(), a.active().kid());
    }

    #[test]
    fn environment_wins_and_bad_specs_fail() {
        let dir = tempfile::tempdir().unwrap();
        let seed = STANDARD.encode([5u8; 32]);
        let keys = SigningKeys::load(&SecretsDir::new(None, dir.path()), |n| {
            (n == "AUTH_JWT_SIGNING_KEYS").then(|| format!("main:{seed}"))
        })
        .unwrap();
        assert_eq!(keys.active().kid(), "main");
        assert!(!dir.path().join("secrets").exists());
        assert!(SigningKeys::parse("x:short").is_err());
        assert!(SigningKeys::parse("").is_err());
    }
}
