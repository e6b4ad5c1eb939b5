//! A certificate chain and its private key from PEM, checked to belong together: what
//! configuration validation (`config::validate`) reads and TLS termination (`crate::tls`)
//! serves. Its own module so that validation does not import `tls`, which imports `config`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("cannot read private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the private key does not belong to the certificate")]
    Mismatch,
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// A certificate's subjectAltName DNS names, lowercase, without a trailing dot (none: no client
/// accepts it for any host name).
pub fn dns_names(key: &CertifiedKey) -> Vec<String> {
    key.end_entity_cert()
        .ok()
        .and_then(|c| webpki::EndEntityCert::try_from(c).ok())
        .map(|ee| {
            ee.valid_dns_names()
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

/// Loads a PEM certificate chain and its PEM private key, checking that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| e.to_string());
    let cert_pem = read(cert).map_err(|reason| TlsError::Cert {
        path: cert.display().to_string(),
        reason,
    })?;
    let key_pem = read(key).map_err(|reason| TlsError::Key {
        path: key.display().to_string(),
        reason,
    })?;
    certified_key_from_pem(cert, &cert_pem, key, &key_pem)
}

/// [`load_certified_key`] from the files' contents (`cert` and `key` name them in errors).
pub fn certified_key_from_pem(
    cert: &Path,
    cert_pem: &[u8],
    key: &Path,
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert.display().to_string(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE block".into()));
    }
    webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| cert_err(format!("{e:?}")))?;
    let key_err = |reason: String| TlsError::Key {
        path: key.display().to_string(),
        reason,
    };
    let der = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| key_err(encrypted_key(key_pem).unwrap_or_else(|| e.to_string())))?;
    let bits = rsa_bits(&der);
    let signing = provider().key_provider.load_private_key(der).map_err(|e| {
        key_err(match bits {
            Some(bits) if !RSA_BITS.contains(&bits) => rsa_size_refused(bits),
            _ => e.to_string(),
        })
    })?;
    let ck = CertifiedKey::new(chain, signing);
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch),
        // Key types whose public key cannot be extracted are accepted as they are.
        Err(_) => Ok(ck),
    }
}

/// The RSA key sizes rustls signs with: aws-lc-rs refuses the others (`RsaKeyPair`, the
/// 2048–8192 bits of RSA_PKCS1_2048_8192 and RSA_PSS_2048_8192).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// Why a key file that holds no usable key is encrypted, when it is: an encrypted PKCS#8 block
/// (`openssl genpkey … -aes256`) or a legacy OpenSSL one (`Proc-Type: 4,ENCRYPTED`). weir
/// reads no passphrase (nginx asks for one, or reads `ssl_password_file`): a key it serves
/// with is stored unencrypted, readable by root only.
fn encrypted_key(pem: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(pem);
    let kind = text.lines().map(str::trim).find_map(|l| match l {
        "-----BEGIN ENCRYPTED PRIVATE KEY-----" => Some("PKCS#8 ENCRYPTED PRIVATE KEY"),
        l if l.starts_with("Proc-Type:") && l.ends_with(",ENCRYPTED") => {
            Some("OpenSSL's legacy Proc-Type: 4,ENCRYPTED")
        }
        _ => None,
    })?;
    Some(format!(
        "the key is encrypted ({kind}) and weir reads no passphrase: it needs an unencrypted \
         key (decrypt it with `openssl pkey -in KEY -out NEW_KEY`; keep the file readable by \
         root only)"
    ))
}

/// The size in bits of an RSA key's modulus (PKCS#1, or PKCS#8 with rsaEncryption), `None`
/// for another kind of key or one that does not parse.
fn rsa_bits(der: &PrivateKeyDer<'_>) -> Option<usize> {
    use der_parser::{der::parse_der, oid};
    let pkcs1 = match der {
        PrivateKeyDer::Pkcs1(k) => k.secret_pkcs1_der(),
        PrivateKeyDer::Pkcs8(k) => {
            // PrivateKeyInfo: version, AlgorithmIdentifier, privateKey (an OCTET STRING).
            let (_, info) = parse_der(k.secret_pkcs8_der()).ok()?;
            let info = info.as_sequence().ok()?;
            let algorithm = info.get(1)?.as_sequence().ok()?.first()?.as_oid().ok()?;
            if *algorithm != oid!(1.2.840.113549.1.1.1) {
                return None;
            }
            info.get(2)?.as_slice().ok()?
        }
        _ => return None,
    };
    // RSAPrivateKey: version, modulus, …
    let (_, key) = parse_der(pkcs1).ok()?;
    let modulus = key.as_sequence().ok()?.get(1)?.as_slice().ok()?;
    let digits = modulus
        .iter()
        .position(|b| *b != 0)
        .map(|i| &modulus[i..])?;
    Some(digits.len() * 8 - digits[0].leading_zeros() as usize)
}

fn rsa_size_refused(bits: usize) -> String {
    let advice = if bits < *RSA_BITS.start() {
        ": make a new key of 2048 bits or more (`openssl genpkey -algorithm RSA -pkeyopt \
         rsa_keygen_bits:2048`) and a certificate for it"
    } else {
        ""
    };
    format!(
        "an RSA key of {bits} bits: weir (rustls with aws-lc-rs) signs with RSA keys of {} to {} \
         bits only{advice}",
        RSA_BITS.start(),
        RSA_BITS.end(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory with `openssl` run in it (the keys an operator makes).
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let d = std::env::temp_dir().join(format!("weir-certs-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            Scratch(d)
        }
        fn openssl(&self, args: &str) {
            let out = std::process::Command::new("openssl")
                .args(args.split_whitespace())
                .current_dir(&self.0)
                .output()
                .expect("openssl");
            assert!(out.status.success(), "openssl {args}: {out:?}");
        }
        /// A self-signed certificate for `key`, and the error loading both gives.
        fn load(&self, key: &str) -> String {
            self.openssl(&format!(
                "req -x509 -new -key {key}.plain -passin pass:x -subj /CN=a.test -days 1 -out {key}.crt"
            ));
            let (c, k) = (self.0.join(format!("{key}.crt")), self.0.join(key));
            match load_certified_key(&c, &k) {
                Ok(_) => panic!("{key} loaded"),
                Err(e) => e.to_string(),
            }
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// An encrypted key was "no items found" (PKCS#8) or "base64 decode error" (legacy).
    #[test]
    fn an_encrypted_key_is_named_encrypted() {
        let s = Scratch::new("enc");
        s.openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out pkcs8.plain");
        s.openssl("pkey -in pkcs8.plain -aes256 -passout pass:x -out pkcs8");
        s.openssl("genrsa -traditional -out legacy.plain 2048");
        s.openssl("rsa -in legacy.plain -traditional -aes256 -passout pass:x -out legacy");
        for (key, kind) in [
            ("pkcs8", "PKCS#8 ENCRYPTED PRIVATE KEY"),
            ("legacy", "OpenSSL's legacy Proc-Type: 4,ENCRYPTED"),
        ] {
            let e = s.load(key);
            assert!(e.contains(&s.0.join(key).display().to_string()), "{e}");
            assert!(e.contains(&format!("the key is encrypted ({kind}")), "{e}");
            assert!(e.contains("needs an unencrypted key"), "{e}");
        }
    }

    /// A 1024-bit RSA key was "unexpected error: failed to parse private key as RSA, ECDSA, or
    /// EdDSA"; 2048 loads, in either encoding.
    #[test]
    fn a_small_rsa_key_is_refused_with_its_size() {
        let s = Scratch::new("rsa");
        s.openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out pkcs8.plain");
        s.openssl("rsa -in pkcs8.plain -traditional -out pkcs1.plain");
        for key in ["pkcs8", "pkcs1"] {
            std::fs::copy(s.0.join(format!("{key}.plain")), s.0.join(key)).unwrap();
            let e = s.load(key);
            assert!(e.contains(&s.0.join(key).display().to_string()), "{e}");
            assert!(e.contains("an RSA key of 1024 bits"), "{e}");
            assert!(e.contains("RSA keys of 2048 to 8192 bits only"), "{e}");
        }
        let der = |pem: &str| PrivateKeyDer::from_pem_file(s.0.join(pem)).unwrap();
        assert_eq!(rsa_bits(&der("pkcs8.plain")), Some(1024));
        assert_eq!(rsa_bits(&der("pkcs1.plain")), Some(1024));
        s.openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out big.plain");
        assert_eq!(rsa_bits(&der("big.plain")), Some(3072));
        s.openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.plain");
        assert_eq!(rsa_bits(&der("ec.plain")), None);
    }
}
