//! Backups at rest: age encryption to an X25519 recipient from the config,
//! decryption with the identity (private key) file the config names, used
//! only by the drill's restore step. Files are streamed, so a large backup
//! never sits in memory.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write as _};
use std::path::Path;
use std::str::FromStr as _;

use age::secrecy::ExposeSecret as _;

/// An identity and the recipient that goes with it, as `steward
/// restore-drill keygen` writes them.
pub struct KeyPair {
    /// `AGE-SECRET-KEY-1…`, for the identity file.
    pub identity: String,
    /// `age1…`, for `[restore] recipient`.
    pub recipient: String,
}

/// A fresh key pair.
pub fn keygen() -> KeyPair {
    let id = age::x25519::Identity::generate();
    KeyPair {
        identity: id.to_string().expose_secret().to_string(),
        recipient: id.to_public().to_string(),
    }
}

/// Whether `recipient` is an age X25519 public key; why not.
pub fn check_recipient(recipient: &str) -> Result<(), String> {
    age::x25519::Recipient::from_str(recipient)
        .map(|_| ())
        .map_err(|e| format!("`{recipient}` is not an age public key (age1…): {e}"))
}

/// Encrypts `plain` to `recipient` into `out` (created private).
pub fn encrypt_file(plain: &Path, out: &Path, recipient: &str) -> Result<(), String> {
    let r = age::x25519::Recipient::from_str(recipient)
        .map_err(|e| format!("recipient `{recipient}`: {e}"))?;
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
        .map_err(|e| format!("encrypting: {e}"))?;
    let mut input =
        BufReader::new(File::open(plain).map_err(|e| format!("{}: {e}", plain.display()))?);
    let file = crate::files::create_private(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut w = enc
        .wrap_output(BufWriter::new(file))
        .map_err(|e| format!("encrypting into {}: {e}", out.display()))?;
    std::io::copy(&mut input, &mut w)
        .map_err(|e| format!("encrypting into {}: {e}", out.display()))?;
    let mut inner = w
        .finish()
        .map_err(|e| format!("encrypting into {}: {e}", out.display()))?;
    inner
        .flush()
        .map_err(|e| format!("{}: {e}", out.display()))?;
    inner
        .into_inner()
        .map_err(|e| format!("{}: {e}", out.display()))?
        .sync_all()
        .map_err(|e| format!("{}: {e}", out.display()))
}

/// Decrypts `sealed` with the identities in `identity_file` into `out`
/// (created private). The error says whether the key, the file or the
/// ciphertext is at fault.
pub fn decrypt_file(sealed: &Path, out: &Path, identity_file: &Path) -> Result<(), String> {
    let ids = age::IdentityFile::from_file(identity_file.display().to_string())
        .map_err(|e| {
            format!(
                "cannot read the identity file {}: {e}",
                identity_file.display()
            )
        })?
        .into_identities()
        .map_err(|e| {
            format!(
                "the identity file {} holds no usable key: {e}",
                identity_file.display()
            )
        })?;
    let input =
        BufReader::new(File::open(sealed).map_err(|e| format!("{}: {e}", sealed.display()))?);
    let dec = age::Decryptor::new_buffered(input).map_err(|e| {
        format!(
            "{} is not an age-encrypted backup (or its header was changed): {e}",
            sealed.display()
        )
    })?;
    let mut reader = dec
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| {
            format!(
                "the backup does not decrypt with the identity in {}: {e}",
                identity_file.display()
            )
        })?;
    let file = crate::files::create_private(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut w = BufWriter::new(file);
    std::io::copy(&mut reader, &mut w).map_err(|e| {
        format!(
            "decrypting {} failed part-way (the ciphertext was changed): {e}",
            sealed.display()
        )
    })?;
    w.flush().map_err(|e| format!("{}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_round_trips_and_a_wrong_key_or_a_flipped_byte_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, sealed, back) = (
            dir.path().join("p"),
            dir.path().join("s"),
            dir.path().join("b"),
        );
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&plain, &data).unwrap();
        let keys = keygen();
        check_recipient(&keys.recipient).unwrap();
        assert!(check_recipient("age1nope").is_err());
        encrypt_file(&plain, &sealed, &keys.recipient).unwrap();
        assert_ne!(std::fs::read(&sealed).unwrap(), data);
        let id = dir.path().join("id.txt");
        std::fs::write(&id, format!("# steward restore drill\n{}\n", keys.identity)).unwrap();
        decrypt_file(&sealed, &back, &id).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), data);

        let other = dir.path().join("other.txt");
        std::fs::write(&other, keygen().identity).unwrap();
        let e = decrypt_file(&sealed, &dir.path().join("x"), &other).unwrap_err();
        assert!(e.contains("does not decrypt with the identity in"), "{e}");

        let mut bytes = std::fs::read(&sealed).unwrap();
        let n = bytes.len();
        bytes[n - 100] ^= 0x40;
        std::fs::write(&sealed, bytes).unwrap();
        let e = decrypt_file(&sealed, &dir.path().join("y"), &id).unwrap_err();
        assert!(e.contains("the ciphertext was changed"), "{e}");

        let missing =
            decrypt_file(&sealed, &dir.path().join("z"), &dir.path().join("nokey")).unwrap_err();
        assert!(
            missing.contains("cannot read the identity file"),
            "{missing}"
        );
    }
}
