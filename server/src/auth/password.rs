//! Password hashing: argon2id with OWASP's parameters (19 MiB memory, 2 iterations, 1 lane),
//! stored as PHC strings. Hashing is slow on purpose, so callers run it on a blocking thread.

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};

fn hasher() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters"),
    )
}

/// Refuses passwords too short to resist guessing.
pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < 10 {
        return Err("a password needs at least 10 characters".into());
    }
    if password.len() > 1024 {
        return Err("a password may have at most 1024 bytes".into());
    }
    Ok(())
}

pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with valid parameters")
        .to_string()
}

/// Whether `password` matches the stored hash. With no hash (unknown user, single sign-on
/// account) a dummy hash is still verified, so the answer takes as long either way.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("not the password of anyone"));
    let (phc, real) = match stored {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = super::hash("correct horse battery");
        let b = super::hash("correct horse battery");
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert!(super::verify("correct horse battery", Some(&a)));
        assert!(!super::verify("correct horse batterY", Some(&a)));
        assert!(!super::verify("anything", None));
        assert!(super::check_strength("short").is_err());
    }
}
