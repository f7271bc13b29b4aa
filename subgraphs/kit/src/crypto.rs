//! Encryption at rest for personal data (emails, phone numbers, …) in service databases.
//!
//! [`FieldCipher`] is a keyring of 256-bit XChaCha20-Poly1305 keys: the first key encrypts, every
//! key decrypts, so keys rotate without a flag day — add a new first key, re-encrypt rows at
//! leisure (each row stores the [`Sealed::key_id`] it was sealed under), then retire the old key.
//! XChaCha's 192-bit nonces are random per message, safe at any volume without a counter.
//!
//! Callers pass associated data (AAD) — typically the row id — which is authenticated but not
//! stored in the ciphertext: a ciphertext copied into another row then fails to decrypt.
//!
//! Encrypted columns cannot be searched, so [`FieldCipher::keyed_hash`] gives a keyed
//! HMAC-SHA256 of a (normalised) value for equality lookups and unique indexes, without making
//! the plaintext guessable from the database alone.
//!
//! Keys come from the environment (`<PREFIX>_DATA_KEYS`, `<PREFIX>_HASH_KEY`) or files named by
//! `<PREFIX>_DATA_KEYS_FILE` / `<PREFIX>_HASH_KEY_FILE`. With neither (embedded development), keys
//! are generated once into the service's [`SecretsDir`] (`<data_dir>/secrets/` unless set apart,
//! e.g. on another volume than the ciphertext they protect) with mode 0600 and reused on later
//! starts.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// File names used in the [`SecretsDir`] when keys are generated locally.
const DATA_KEYS_FILE: &str = "data_keys";
const HASH_KEY_FILE: &str = "hash_key";

/// Where a service keeps secrets it generates itself (embedded development): its `secrets_dir`
/// setting, else `<data_dir>/secrets`. A directory of its own (mode 0700), so keys can live
/// apart from the data they protect — a copy of the data directory then holds no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsDir(PathBuf);

impl SecretsDir {
    /// `configured` when set (and not blank), else `<data_dir>/secrets`.
    pub fn new(configured: Option<&Path>, data_dir: &Path) -> SecretsDir {
        match configured.filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => SecretsDir(dir.to_path_buf()),
            None => SecretsDir(data_dir.join("secrets")),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A file in it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

/// Why a key could not be loaded or a value not sealed/opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A key specification is malformed (wrong length, bad base64, empty list, …).
    #[error("invalid key material: {0}")]
    InvalidKey(String),
    /// The ciphertext names a key the keyring does not hold.
    #[error("unknown encryption key id `{0}`")]
    UnknownKey(String),
    /// Authentication failed: wrong key, wrong AAD, or tampered ciphertext.
    #[error("decryption failed (wrong key, wrong associated data, or tampered ciphertext)")]
    Decrypt,
    /// Encryption failed (only when the randomness source fails).
    #[error("encryption failed: {0}")]
    Encrypt(String),
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A ciphertext and the id of the key that sealed it (store both, in adjacent columns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the keyring key that sealed `bytes`.
    pub key_id: String,
    /// Nonce followed by ciphertext and tag.
    pub bytes: Vec<u8>,
}

/// An AEAD keyring for field-level encryption; the first key encrypts, all keys decrypt.
#[derive(Clone)]
pub struct FieldCipher {
    keys: Vec<(String, XChaCha20Poly1305)>,
    hash_key: [u8; KEY_LEN],
}

impl fmt::Debug for FieldCipher {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldCipher")
            .field(
                "key_ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl FieldCipher {
    /// Keys from env `<PREFIX>_DATA_KEYS` ("kid:base64-32-bytes,kid2:…", first = active) or the
    /// file named by `<PREFIX>_DATA_KEYS_FILE`; hash key from `<PREFIX>_HASH_KEY` /
    /// `<PREFIX>_HASH_KEY_FILE`. With neither set (embedded dev), generates keys once into
    /// `secrets` (mode 0600) and reuses them.
    pub fn load(prefix: &str, secrets: &SecretsDir) -> Result<FieldCipher, CryptoError> {
        Self::load_with(prefix, secrets, |name| std::env::var(name).ok())
    }

    /// [`FieldCipher::load`] reading variables through `env` instead of the process environment
    /// (tests and tools that must not touch global state).
    pub fn load_with(
        prefix: &str,
        secrets: &SecretsDir,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<FieldCipher, CryptoError> {
        let prefix = prefix.trim_end_matches('_').to_ascii_uppercase();
        let keys_spec = match secret_from(&env, &format!("{prefix}_DATA_KEYS"))? {
            Some(spec) => spec,
            None => read_or_create(&secrets.join(DATA_KEYS_FILE), || {
                Ok(format!(
                    "{}:{}",
                    new_key_id(),
                    STANDARD.encode(random_key()?)
                ))
            })?,
        };
        let hash_spec = match secret_from(&env, &format!("{prefix}_HASH_KEY"))? {
            Some(spec) => spec,
            None => read_or_create(&secrets.join(HASH_KEY_FILE), || {
                Ok(STANDARD.encode(random_key()?))
            })?,
        };
        Self::from_specs(&keys_spec, &hash_spec)
    }

    /// A keyring from a key list ("kid:base64,kid2:base64", first = active) and a base64 hash key.
    pub fn from_specs(data_keys: &str, hash_key: &str) -> Result<FieldCipher, CryptoError> {
        let keys = parse_key_list(data_keys)?;
        let hash_key = decode_key(hash_key.trim(), "hash key")?;
        Self::from_keys(keys, hash_key)
    }

    /// A keyring from raw keys (first = active) and a raw hash key.
    pub fn from_keys(
        keys: Vec<(String, [u8; KEY_LEN])>,
        hash_key: [u8; KEY_LEN],
    ) -> Result<FieldCipher, CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::InvalidKey("the data key list is empty".into()));
        }
        let mut seen = std::collections::HashSet::new();
        let mut ring = Vec::with_capacity(keys.len());
        for (id, key) in keys {
            if !seen.insert(id.clone()) {
                return Err(CryptoError::InvalidKey(format!("duplicate key id `{id}`")));
            }
            ring.push((id, XChaCha20Poly1305::new(&key.into())));
        }
        Ok(FieldCipher {
            keys: ring,
            hash_key,
        })
    }

    /// Seals `plaintext` under the active key, binding `aad` (e.g. the row id).
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
        let (key_id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| CryptoError::Encrypt(e.to_string()))?;
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|e| CryptoError::Encrypt(e.to_string()))?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: key_id.clone(),
            bytes,
        })
    }

    /// Opens a value sealed under any key of the ring; fails if `aad` differs from sealing time.
    pub fn decrypt(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let cipher = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key_id)
            .map(|(_, c)| c)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Decrypt)
    }

    /// The id of the key new values are sealed under.
    pub fn active_key_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Every key id in the ring, active first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// Keyed hash (HMAC-SHA256, hex) for equality lookups on encrypted fields.
    pub fn keyed_hash(&self, value: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hash_key)
            .expect("HMAC accepts keys of any length");
        mac.update(value);
        hex(&mac.finalize().into_bytes())
    }
}

/// Adds a freshly generated key as the new active key of the locally generated keyring in
/// `secrets` (embedded development; with env/file keys, operators edit the list instead).
/// Returns the new key id. Old keys stay, so existing rows still decrypt.
pub fn rotate_local_data_key(secrets: &SecretsDir) -> Result<String, CryptoError> {
    let path = secrets.join(DATA_KEYS_FILE);
    let existing = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(CryptoError::Io { path, source }),
    };
    let id = new_key_id();
    let entry = format!("{id}:{}", STANDARD.encode(random_key()?));
    let list = if existing.trim().is_empty() {
        entry
    } else {
        // Validate before rewriting, so a corrupt file is not made worse.
        parse_key_list(&existing)?;
        format!("{entry},{}", existing.trim())
    };
    write_secret(&path, &list)?;
    Ok(id)
}

/// A new random 256-bit key, base64-encoded (for `<PREFIX>_DATA_KEYS` / `<PREFIX>_HASH_KEY`).
pub fn generate_key_base64() -> Result<String, CryptoError> {
    Ok(STANDARD.encode(random_key()?))
}

/// The value of `name`, or the contents of the file named by `name_FILE`, or `None`.
fn secret_from(
    env: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<String>, CryptoError> {
    if let Some(value) = env(name).filter(|v| !v.trim().is_empty()) {
        return Ok(Some(value));
    }
    if let Some(file) = env(&format!("{name}_FILE")).filter(|v| !v.trim().is_empty()) {
        let path = PathBuf::from(file.trim());
        return std::fs::read_to_string(&path)
            .map(Some)
            .map_err(|source| CryptoError::Io { path, source });
    }
    Ok(None)
}

fn read_or_create(
    path: &Path,
    make: impl FnOnce() -> Result<String, CryptoError>,
) -> Result<String, CryptoError> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(s),
        Ok(_) => Err(CryptoError::InvalidKey(format!(
            "{} is empty; delete it to generate a new key (data sealed under the old one is lost)",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = make()?;
            write_secret(path, &value)?;
            Ok(value)
        }
        Err(source) => Err(CryptoError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes a secret file readable by the owner only (mode 0600), atomically (temp file + rename)
/// so a crash never leaves a half-written key.
pub fn write_secret(path: &Path, contents: &str) -> Result<(), CryptoError> {
    let io = |source| CryptoError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        // The secrets directory itself is private too, so file names and counts do not leak.
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(contents.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// Parses "kid:base64,kid2:base64" (commas or newlines between entries).
fn parse_key_list(spec: &str) -> Result<Vec<(String, [u8; KEY_LEN])>, CryptoError> {
    spec.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (id, key) = entry.split_once(':').ok_or_else(|| {
                CryptoError::InvalidKey("each data key must be `kid:base64-32-bytes`".into())
            })?;
            let id = id.trim();
            if id.is_empty() {
                return Err(CryptoError::InvalidKey("empty key id".into()));
            }
            Ok((id.to_owned(), decode_key(key.trim(), id)?))
        })
        .collect()
}

fn decode_key(b64: &str, what: &str) -> Result<[u8; KEY_LEN], CryptoError> {
    let bytes = STANDARD
        .decode(b64)
        .map_err(|e| CryptoError::InvalidKey(format!("{what}: bad base64: {e}")))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        CryptoError::InvalidKey(format!("{what}: {} bytes, expected {KEY_LEN}", b.len()))
    })
}

fn random_key() -> Result<[u8; KEY_LEN], CryptoError> {
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| CryptoError::Encrypt(e.to_string()))?;
    Ok(key)
}

/// Key ids carry their creation date, so an operator can tell old keys from new at a glance.
fn new_key_id() -> String {
    let mut suffix = [0u8; 3];
    let _ = getrandom::fill(&mut suffix);
    format!("k{}-{}", chrono::Utc::now().format("%Y%m%d"), hex(&suffix))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn round_trip_and_aad_binding() {
        let cipher = FieldCipher::from_keys(vec![("a".into(), key(1))], key(9)).unwrap();
        let sealed = cipher.encrypt(b"ada@example.com", b"row-1").unwrap();
        assert_eq!(sealed.key_id, "a");
        assert!(!sealed
            .bytes
            .windows(b"ada@example.com".len())
            .any(|w| w == b"ada@example.com"));
        assert_eq!(
            cipher.decrypt(&sealed, b"row-1").unwrap(),
            b"ada@example.com"
        );
        assert!(matches!(
            cipher.decrypt(&sealed, b"row-2"),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn nonces_differ_per_message() {
        let cipher = FieldCipher::from_keys(vec![("a".into(), key(1))], key(9)).unwrap();
        let one = cipher.encrypt(b"same", b"").unwrap();
        let two = cipher.encrypt(b"same", b"").unwrap();
        assert_ne!(one.bytes, two.bytes);
    }

    #[test]
    fn tampering_is_detected() {
        let cipher = FieldCipher::from_keys(vec![("a".into(), key(1))], key(9)).unwrap();
        let mut sealed = cipher.encrypt(b"secret", b"x").unwrap();
        let last = sealed.bytes.len() - 1;
        sealed.bytes[last] ^= 1;
        assert!(matches!(
            cipher.decrypt(&sealed, b"x"),
            Err(CryptoError::Decrypt)
        ));
        sealed.bytes.truncate(3);
        assert!(matches!(
            cipher.decrypt(&sealed, b"x"),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable() {
        let old = FieldCipher::from_keys(vec![("old".into(), key(1))], key(9)).unwrap();
        let sealed = old.encrypt(b"555-0100", b"id").unwrap();
        let rotated =
            FieldCipher::from_keys(vec![("new".into(), key(2)), ("old".into(), key(1))], key(9))
                .unwrap();
        assert_eq!(rotated.active_key_id(), "new");
        assert_eq!(rotated.decrypt(&sealed, b"id").unwrap(), b"555-0100");
        assert_eq!(rotated.encrypt(b"x", b"id").unwrap().key_id, "new");
        // A ring that dropped the old key says which key is missing.
        let retired = FieldCipher::from_keys(vec![("new".into(), key(2))], key(9)).unwrap();
        assert!(matches!(
            retired.decrypt(&sealed, b"id"),
            Err(CryptoError::UnknownKey(id)) if id == "old"
        ));
    }

    #[test]
    fn keyed_hash_is_stable_and_keyed() {
        let a = FieldCipher::from_keys(vec![("a".into(), key(1))], key(9)).unwrap();
        let b = FieldCipher::from_keys(vec![("b".into(), key(2))], key(9)).unwrap();
        let c = FieldCipher::from_keys(vec![("a".into(), key(1))], key(8)).unwrap();
        let h = a.keyed_hash(b"ada@example.com");
        assert_eq!(h.len(), 64);
        // Independent of the data keys (rotation must not break lookups), dependent on the hash key.
        assert_eq!(h, b.keyed_hash(b"ada@example.com"));
        assert_ne!(h, c.keyed_hash(b"ada@example.com"));
        assert_ne!(h, a.keyed_hash(b"bob@example.com"));
    }

    #[test]
    fn specs_parse_and_reject_bad_keys() {
        let k1 = STANDARD.encode(key(1));
        let k2 = STANDARD.encode(key(2));
        let cipher = FieldCipher::from_specs(&format!("new:{k2}, old:{k1}\n"), &k1).unwrap();
        assert_eq!(cipher.key_ids().collect::<Vec<_>>(), ["new", "old"]);
        for bad in [
            "",
            "nocolon",
            "a:!!!",
            &format!("a:{}", STANDARD.encode([0u8; 16])),
        ] {
            assert!(
                matches!(
                    FieldCipher::from_specs(bad, &k1),
                    Err(CryptoError::InvalidKey(_))
                ),
                "{bad:?} must be rejected"
            );
        }
        assert!(FieldCipher::from_specs(&format!("a:{k1},a:{k2}"), &k1).is_err());
    }

    #[test]
    fn embedded_keys_are_generated_once_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let no_env = |_: &str| None;
        let secrets = SecretsDir::new(None, dir.path());
        assert_eq!(secrets.path(), dir.path().join("secrets"));
        let first = FieldCipher::load_with("AUTH", &secrets, no_env).unwrap();
        let sealed = first.encrypt(b"hello", b"r").unwrap();
        let second = FieldCipher::load_with("AUTH", &secrets, no_env).unwrap();
        assert_eq!(first.active_key_id(), second.active_key_id());
        assert_eq!(second.decrypt(&sealed, b"r").unwrap(), b"hello");
        assert_eq!(first.keyed_hash(b"v"), second.keyed_hash(b"v"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let dir_mode = std::fs::metadata(dir.path().join("secrets"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
            for f in [DATA_KEYS_FILE, HASH_KEY_FILE] {
                let mode = std::fs::metadata(dir.path().join("secrets").join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        let new_id = rotate_local_data_key(&secrets).unwrap();
        let third = FieldCipher::load_with("AUTH", &secrets, no_env).unwrap();
        assert_eq!(third.active_key_id(), new_id);
        assert_eq!(third.decrypt(&sealed, b"r").unwrap(), b"hello");
    }

    #[test]
    fn env_and_file_keys_win_over_generated_ones() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = STANDARD.encode(key(1));
        let file = dir.path().join("hash.key");
        std::fs::write(&file, format!("{}\n", STANDARD.encode(key(7)))).unwrap();
        let env = |name: &str| match name {
            "CHAT_DATA_KEYS" => Some(format!("envkey:{k1}")),
            "CHAT_HASH_KEY_FILE" => Some(file.display().to_string()),
            _ => None,
        };
        let cipher =
            FieldCipher::load_with("CHAT", &SecretsDir::new(None, dir.path()), env).unwrap();
        assert_eq!(cipher.active_key_id(), "envkey");
        let expected = FieldCipher::from_keys(vec![("x".into(), key(3))], key(7)).unwrap();
        assert_eq!(cipher.keyed_hash(b"v"), expected.keyed_hash(b"v"));
        assert!(!dir.path().join("secrets").exists());
    }
}
