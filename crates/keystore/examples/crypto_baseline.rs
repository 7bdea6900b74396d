//! Native baseline for `bench/crypto.sh`: the same operations as the `crypto_bench` guest, calling
//! the crypto crates (or the PKCS#11 module) directly, with no wasmzip in between. Prints the same
//! lines as the guest.
//!
//! ```text
//! crypto_baseline software sign N
//!     N ed25519-dalek `SigningKey::sign` of one 64-byte message (key built once, from random bytes)
//!     → sign ops=N secs=S per_sec=R
//! crypto_baseline software seal SIZE N
//!     N `Aes256Gcm::encrypt` of one SIZE-byte plaintext, empty associated data, a fresh random
//!     12-byte nonce from the system per call, as the wasmzip host does (cipher built once)
//!     → seal size=SIZE ops=N secs=S mb_per_sec=R per_sec=R
//! crypto_baseline pkcs11 MODULE TOKEN_LABEL PIN sign KEYLABEL N
//!     finds the token by label, logs in as user, finds the private key whose CKA_LABEL is KEYLABEL
//!     (wasmzip labels its objects `wasmzip:NAME:vN`), and runs N C_Sign of one 64-byte message:
//!     CKM_EDDSA (pure Ed25519) for an Edwards key, or SHA-256 in software then CKM_ECDSA for a
//!     P-256 key, as the wasmzip host does
//! crypto_baseline pkcs11 MODULE TOKEN_LABEL PIN seal KEYLABEL SIZE N
//!     N C_Encrypt with CKM_AES_GCM under the secret key labelled KEYLABEL, a random 12-byte IV per
//!     call, empty associated data, 128-bit tag
//! ```
//!
//! Only the loop is timed; key loading, login, object search and one warm-up operation come before
//! it. `mb_per_sec` counts plaintext bytes, MB = 10^6 bytes. Errors: `crypto_baseline: <message>` on
//! stderr, exit status 1.
//!
//! With glibc, the baseline first raises malloc's trim and mmap thresholds (`mallopt`). Otherwise a
//! single-threaded loop of 1 MiB operations hands its heap top back to the kernel after every
//! operation (`brk`) and page-faults it in again on the next, and the baseline would measure that
//! rather than the crypto (SoftHSM2's 1 MiB seals ran at about half speed). The wasmzip process did
//! not show that pattern, so without this the ratios would flatter wasmzip.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::{AuthPin, Ulong};
use ed25519_dalek::Signer as _;
use sha2::Digest as _;

const USAGE: &str = "usage: crypto_baseline software sign N
       crypto_baseline software seal SIZE N
       crypto_baseline pkcs11 MODULE TOKEN_LABEL PIN sign KEYLABEL N
       crypto_baseline pkcs11 MODULE TOKEN_LABEL PIN seal KEYLABEL SIZE N";

const NONCE_LEN: usize = 12;
const TAG_BITS: u32 = 128;

/// Keeps freed memory in the process (see the crate documentation).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    use std::ffi::c_int;
    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;
    // SAFETY: mallopt only changes glibc malloc parameters; called before any other thread exists.
    unsafe {
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["software", rest @ ..] => software(rest),
        ["pkcs11", module, token, pin, rest @ ..] => pkcs11(module, token, pin, rest),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("crypto_baseline: {message}");
            ExitCode::FAILURE
        }
    }
}

fn number(what: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{what} must be a positive integer, not `{text}`\n{USAGE}")),
    }
}

fn sign_line(n: usize, secs: f64) -> String {
    format!("sign ops={n} secs={secs:.6} per_sec={:.1}", n as f64 / secs)
}

fn seal_line(size: usize, n: usize, secs: f64) -> String {
    let mb_per_sec = (size as f64 * n as f64) / 1e6 / secs;
    format!("seal size={size} ops={n} secs={secs:.6} mb_per_sec={mb_per_sec:.2} per_sec={:.1}", n as f64 / secs)
}

fn random(buf: &mut [u8]) -> Result<(), String> {
    getrandom::fill(buf).map_err(|e| format!("the system random source failed: {e}"))
}

fn plaintext(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

// ------------------------------------------------------------------------------------------------
// Software: the crates the software keystore uses.

fn software(args: &[&str]) -> Result<String, String> {
    match args {
        ["sign", n] => {
            let n = number("N", n)?;
            let mut seed = [0u8; 32];
            random(&mut seed)?;
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let message = [0x5a_u8; 64];
            black_box(key.sign(&message));

            let start = Instant::now();
            for _ in 0..n {
                black_box(key.sign(black_box(&message)));
            }
            Ok(sign_line(n, start.elapsed().as_secs_f64()))
        }
        ["seal", size, n] => {
            let size = number("SIZE", size)?;
            let n = number("N", n)?;
            let mut key = [0u8; 32];
            random(&mut key)?;
            let cipher = Aes256Gcm::new(&key.into());
            let data = plaintext(size);
            let seal_once = |data: &[u8]| -> Result<Vec<u8>, String> {
                let mut nonce = [0u8; NONCE_LEN];
                random(&mut nonce)?;
                cipher
                    .encrypt(Nonce::from_slice(&nonce), Payload { msg: data, aad: b"" })
                    .map_err(|_| "AES-GCM encryption failed".to_string())
            };
            black_box(seal_once(&data)?);

            let start = Instant::now();
            for _ in 0..n {
                black_box(seal_once(black_box(&data))?);
            }
            Ok(seal_line(size, n, start.elapsed().as_secs_f64()))
        }
        _ => Err(USAGE.to_string()),
    }
}

// ------------------------------------------------------------------------------------------------
// PKCS#11: cryptoki directly.

fn ck(call: &str) -> impl Fn(CkError) -> String + '_ {
    move |e| format!("{call}: {e}")
}

fn pkcs11(module: &str, token_label: &str, pin: &str, args: &[&str]) -> Result<String, String> {
    // Check the arguments before loading the module.
    let (op, key_label, size, n) = match args {
        ["sign", label, n] => ("sign", *label, 64, number("N", n)?),
        ["seal", label, size, n] => ("seal", *label, number("SIZE", size)?, number("N", n)?),
        _ => return Err(USAGE.to_string()),
    };

    let pkcs11 = Pkcs11::new(module).map_err(|e| format!("cannot load the PKCS#11 module {module}: {e}"))?;
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(ck("C_Initialize")(e)),
    }
    let mut slot = None;
    let mut labels = Vec::new();
    for s in pkcs11.get_slots_with_token().map_err(ck("C_GetSlotList"))? {
        let Ok(info) = pkcs11.get_token_info(s) else { continue };
        let label = info.label().trim_end_matches(' ').to_string();
        if label == token_label {
            slot = Some(s);
        }
        labels.push(format!("\"{label}\""));
    }
    let slot = slot.ok_or_else(|| format!("no token labelled \"{token_label}\" in {module}; tokens: {}", labels.join(", ")))?;
    let session = pkcs11.open_rw_session(slot).map_err(ck("C_OpenSession"))?;
    session.login(UserType::User, Some(&AuthPin::new(pin.into()))).map_err(ck("C_Login"))?;

    let result = match op {
        "sign" => pkcs11_sign(&session, key_label, n),
        _ => pkcs11_seal(&session, key_label, size, n),
    };
    let _ = session.logout();
    result
}

/// The one object of `class` labelled `label`.
fn find_key(session: &Session, class: ObjectClass, label: &str) -> Result<ObjectHandle, String> {
    let handles = session
        .find_objects(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())])
        .map_err(ck("C_FindObjects"))?;
    match handles.as_slice() {
        [h] => Ok(*h),
        [] => Err(format!("no {class} object labelled \"{label}\" on the token")),
        many => Err(format!("{} {class} objects are labelled \"{label}\"", many.len())),
    }
}

fn pkcs11_sign(session: &Session, label: &str, n: usize) -> Result<String, String> {
    let key = find_key(session, ObjectClass::PRIVATE_KEY, label)?;
    let key_type = session
        .get_attributes(key, &[AttributeType::KeyType])
        .map_err(ck("C_GetAttributeValue"))?
        .into_iter()
        .find_map(|a| if let Attribute::KeyType(t) = a { Some(t) } else { None })
        .ok_or_else(|| format!("the key \"{label}\" has no CKA_KEY_TYPE"))?;
    let message = [0x5a_u8; 64];
    let eddsa = key_type == KeyType::EC_EDWARDS;
    if !eddsa && key_type != KeyType::EC {
        return Err(format!("the key \"{label}\" is a {key_type} key; sign needs CKK_EC_EDWARDS or CKK_EC"));
    }
    let eddsa_mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
    let sign_once = |m: &[u8]| -> Result<Vec<u8>, String> {
        if eddsa {
            session.sign(&eddsa_mechanism, key, m)
        } else {
            // As the host does: SHA-256 here, the raw ECDSA in the token.
            session.sign(&Mechanism::Ecdsa, key, &sha2::Sha256::digest(m))
        }
        .map_err(ck("C_Sign"))
    };
    black_box(sign_once(&message)?);

    let start = Instant::now();
    for _ in 0..n {
        black_box(sign_once(black_box(&message))?);
    }
    Ok(sign_line(n, start.elapsed().as_secs_f64()))
}

fn pkcs11_seal(session: &Session, label: &str, size: usize, n: usize) -> Result<String, String> {
    let key = find_key(session, ObjectClass::SECRET_KEY, label)?;
    let data = plaintext(size);
    let seal_once = |data: &[u8]| -> Result<Vec<u8>, String> {
        let mut iv = [0u8; NONCE_LEN];
        random(&mut iv)?;
        let params = GcmParams::new(&mut iv, b"", Ulong::from(TAG_BITS as std::ffi::c_ulong)).map_err(ck("CK_GCM_PARAMS"))?;
        session.encrypt(&Mechanism::AesGcm(params), key, data).map_err(ck("C_Encrypt"))
    };
    let first = seal_once(&data)?;
    if first.len() != size + 16 {
        return Err(format!("C_Encrypt returned {} bytes for {size} bytes of plaintext", first.len()));
    }

    let start = Instant::now();
    for _ in 0..n {
        black_box(seal_once(black_box(&data))?);
    }
    Ok(seal_line(size, n, start.elapsed().as_secs_f64()))
}
