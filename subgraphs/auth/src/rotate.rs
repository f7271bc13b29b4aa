//! `switchyard-auth rotate-keys`: re-encrypts PII sealed under old data keys.
//!
//! Rows are read in id order in batches and each field is rewritten with a conditional update
//! (`… WHERE <field>_key_id = <old>`), so a concurrent writer is never overwritten and running it
//! twice, or alongside the service, is safe: the second run finds nothing to do.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sqlx::AnyPool;
use switchyard_subgraph_kit::crypto::FieldCipher;

use crate::core::{aad, open_field};
use crate::store;

/// What a rotation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Rows that had at least one field under an old key.
    pub rows: u64,
    /// Email ciphertexts rewritten.
    pub emails: u64,
    /// Phone ciphertexts rewritten.
    pub phones: u64,
    /// Fields that could not be rewritten (key missing from the ring, or tampered).
    pub failed: u64,
}

impl std::fmt::Display for RotationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows re-encrypted ({} emails, {} phones), {} failed",
            self.rows, self.emails, self.phones, self.failed
        )
    }
}

/// Re-encrypts every field not under `cipher`'s active key, `batch_size` rows at a time.
pub async fn reencrypt(
    pool: &AnyPool,
    cipher: &FieldCipher,
    batch_size: i64,
) -> anyhow::Result<RotationReport> {
    let active = cipher.active_key_id().to_owned();
    let mut report = RotationReport::default();
    let mut after = String::new();
    loop {
        let batch = store::accounts_not_under_key(pool, &active, &after, batch_size.max(1)).await?;
        let Some(last) = batch.last() else {
            break;
        };
        after = last.id.clone();
        for row in &batch {
            report.rows += 1;
            if row.email_key_id != active {
                match rewrite(
                    cipher,
                    &row.id,
                    "email",
                    &row.email_key_id,
                    &row.email_ciphertext,
                ) {
                    Ok((key_id, ciphertext)) => {
                        sqlx::query(
                            "UPDATE auth_accounts SET email_key_id = $1, email_ciphertext = $2
                             WHERE id = $3 AND email_key_id = $4",
                        )
                        .bind(key_id)
                        .bind(ciphertext)
                        .bind(row.id.clone())
                        .bind(row.email_key_id.clone())
                        .execute(pool)
                        .await?;
                        report.emails += 1;
                    }
                    Err(e) => {
                        tracing::error!(account = %row.id, error = %e, "cannot re-encrypt email");
                        report.failed += 1;
                    }
                }
            }
            if let (Some(old_key), Some(old_ct)) = (&row.phone_key_id, &row.phone_ciphertext) {
                if *old_key != active {
                    match rewrite(cipher, &row.id, "phone", old_key, old_ct) {
                        Ok((key_id, ciphertext)) => {
                            sqlx::query(
                                "UPDATE auth_accounts SET phone_key_id = $1, phone_ciphertext = $2
                                 WHERE id = $3 AND phone_key_id = $4",
                            )
                            .bind(key_id)
                            .bind(ciphertext)
                            .bind(row.id.clone())
                            .bind(old_key.clone())
                            .execute(pool)
                            .await?;
                            report.phones += 1;
                        }
                        Err(e) => {
                            tracing::error!(account = %row.id, error = %e, "cannot re-encrypt phone");
                            report.failed += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(report)
}

fn rewrite(
    cipher: &FieldCipher,
    id: &str,
    field: &str,
    key_id: &str,
    ciphertext: &str,
) -> anyhow::Result<(String, String)> {
    let plain =
        open_field(cipher, id, field, key_id, ciphertext).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let sealed = cipher.encrypt(plain.as_bytes(), &aad(id, field))?;
    Ok((sealed.key_id, STANDARD.encode(sealed.bytes)))
}
