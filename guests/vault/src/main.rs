//! `vault` — a WASI 0.2 command that seals, opens, signs and tags files with host-held keys
//! (through `wasmzip:crypto`, via the `wasmzip-guest` crate).
//!
//! Paths are guest paths in directories the host preopens (for example `/data/in.txt` under the
//! grant `filesystem:write:/data`). Usage:
//!
//! ```text
//! vault seal KEY INPUT OUTPUT [--aad TEXT]  writes the sealed INPUT to OUTPUT in the stored format of
//!                                           wasmzip_guest::Sealed (magic "WZS1"); prints
//!                                           `sealed INPUT -> OUTPUT version=N bytes=M`
//!                                           (grant crypto:key:KEY:seal)
//! vault open KEY INPUT OUTPUT [--aad TEXT]  unseals INPUT (as written by `seal`, with the same
//!                                           --aad) into OUTPUT; prints
//!                                           `opened INPUT -> OUTPUT version=N bytes=M`
//!                                           (grant crypto:key:KEY:open)
//! vault sign KEY INPUT [--out SIGFILE]      prints `version=N signature=HEX` (HEX: the raw
//!                                           signature); --out also writes the stored signature
//!                                           (magic "WZG1") to SIGFILE (grant ...:sign)
//! vault verify KEY INPUT SIGFILE            checks a stored signature; prints `valid version=N`,
//!                                           or `vault: signature is not valid` and exits 5
//!                                           (grant ...:verify)
//! vault tag KEY INPUT [--out TAGFILE]       prints `version=N tag=HEX`; --out also writes the
//!                                           stored tag (magic "WZM1") (grant ...:mac)
//! vault check KEY INPUT TAGFILE             checks a stored tag like `verify` (grant ...:mac)
//! vault public KEY                          prints the public key as PEM (grant ...:sign)
//! vault sha256 INPUT                        prints `HEX  INPUT`, like sha256sum (no grant)
//! ```
//!
//! `--aad TEXT` is associated data: authenticated, not encrypted, not stored; `open` needs the same
//! text (default empty). Options may come anywhere after the command, also as `--aad=TEXT`.
//!
//! Errors go to stderr as `vault: <message>`. Exit status: 0 success; 1 any other error (an
//! unreadable file, malformed sealed data, a keystore failure, ...); 2 bad usage; 3 key access
//! denied; 4 key not found; 5 authentication failed (sealed data or aad changed, or an invalid
//! signature or tag). The program never panics.

use std::io::Write as _;
use std::process::ExitCode;

use wasmzip_guest::{Error, Key, Sealed, Signature, Tag, to_hex};

const USAGE: &str = "usage: vault seal|open KEY INPUT OUTPUT [--aad TEXT]
       vault sign KEY INPUT [--out SIGFILE]
       vault verify KEY INPUT SIGFILE
       vault tag KEY INPUT [--out TAGFILE]
       vault check KEY INPUT TAGFILE
       vault public KEY
       vault sha256 INPUT";

/// A failure: the message for stderr and the exit status.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure { code: 2, message: format!("{}\n{USAGE}", message.into()) }
    }

    fn other(message: impl Into<String>) -> Failure {
        Failure { code: 1, message: message.into() }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let code = match error {
            Error::Denied => 3,
            Error::NotFound => 4,
            Error::AuthenticationFailed => 5,
            _ => 1,
        };
        Failure { code, message: error.to_string() }
    }
}

/// Adds the key name to a key error's message.
fn on_key(name: &str) -> impl Fn(Error) -> Failure + '_ {
    move |error| {
        let mut failure = Failure::from(error);
        failure.message = format!("{name}: {}", failure.message);
        failure
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(args) {
        Ok(()) => 0,
        Err(failure) => {
            let _ = writeln!(std::io::stderr(), "vault: {}", failure.message);
            failure.code
        }
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if code > 1 {
        // std's exit can only say success or failure through WASI 0.2's `exit`; `exit-with-code`
        // carries the number itself.
        wasip2::cli::exit::exit_with_code(code);
    }
    ExitCode::from(code)
}

/// Command-line arguments split into positionals and the `--aad` / `--out` options.
struct Args {
    positional: Vec<String>,
    aad: Option<String>,
    out: Option<String>,
}

fn parse(args: Vec<String>) -> Result<Args, Failure> {
    let mut parsed = Args { positional: Vec::new(), aad: None, out: None };
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
            _ => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "--aad" => &mut parsed.aad,
            "--out" => &mut parsed.out,
            "--" => {
                parsed.positional.extend(iter.by_ref());
                break;
            }
            f if f.starts_with("--") => return Err(Failure::usage(format!("unknown option `{f}`"))),
            _ => {
                parsed.positional.push(arg);
                continue;
            }
        };
        let value = match inline {
            Some(v) => v,
            None => iter.next().ok_or_else(|| Failure::usage(format!("`{flag}` needs a value")))?,
        };
        if slot.replace(value).is_some() {
            return Err(Failure::usage(format!("`{flag}` given twice")));
        }
    }
    Ok(parsed)
}

fn read(path: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::other(format!("cannot read {path}: {e}")))
}

fn write(path: &str, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).map_err(|e| Failure::other(format!("cannot write {path}: {e}")))
}

fn run(args: Vec<String>) -> Result<(), Failure> {
    let Args { positional, aad, out } = parse(args)?;
    let Some((command, rest)) = positional.split_first() else {
        return Err(Failure::usage("no command given"));
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let takes_aad = matches!(command.as_str(), "seal" | "open");
    let takes_out = matches!(command.as_str(), "sign" | "tag");
    if aad.is_some() && !takes_aad {
        return Err(Failure::usage(format!("`--aad` does not apply to `{command}`")));
    }
    if out.is_some() && !takes_out {
        return Err(Failure::usage(format!("`--out` does not apply to `{command}`")));
    }
    let aad = aad.unwrap_or_default();
    let mut stdout = std::io::stdout().lock();
    let mut say = |line: String| writeln!(stdout, "{line}").map_err(|e| Failure::other(format!("cannot write to stdout: {e}")));

    match (command.as_str(), rest.as_slice()) {
        ("seal", [key, input, output]) => {
            let plaintext = read(input)?;
            let key_handle = Key::open(key).map_err(on_key(key))?;
            let sealed = key_handle.seal(&plaintext, &aad).map_err(on_key(key))?;
            let bytes = sealed.to_bytes();
            write(output, &bytes)?;
            say(format!("sealed {input} -> {output} version={} bytes={}", sealed.key_version(), bytes.len()))
        }
        ("open", [key, input, output]) => {
            let sealed = Sealed::from_bytes(&read(input)?).map_err(|e| Failure::other(format!("{input}: {e}")))?;
            let key_handle = Key::open(key).map_err(on_key(key))?;
            let plaintext = key_handle.unseal(&sealed, &aad).map_err(on_key(key))?;
            write(output, &plaintext)?;
            say(format!("opened {input} -> {output} version={} bytes={}", sealed.key_version(), plaintext.len()))
        }
        ("sign", [key, input]) => {
            let message = read(input)?;
            let signature = Key::open(key).and_then(|k| k.sign(&message)).map_err(on_key(key))?;
            if let Some(out) = &out {
                write(out, &signature.to_bytes())?;
            }
            say(format!("version={} signature={}", signature.key_version(), to_hex(signature.as_bytes())))
        }
        ("verify", [key, input, sigfile]) => {
            let message = read(input)?;
            let signature = Signature::from_bytes(&read(sigfile)?).map_err(|e| Failure::other(format!("{sigfile}: {e}")))?;
            let valid = Key::open(key).and_then(|k| k.verify(&message, &signature)).map_err(on_key(key))?;
            if !valid {
                return Err(Failure { code: 5, message: "signature is not valid".into() });
            }
            say(format!("valid version={}", signature.key_version()))
        }
        ("tag", [key, input]) => {
            let data = read(input)?;
            let tag = Key::open(key).and_then(|k| k.tag(&data)).map_err(on_key(key))?;
            if let Some(out) = &out {
                write(out, &tag.to_bytes())?;
            }
            say(format!("version={} tag={}", tag.key_version(), to_hex(tag.as_bytes())))
        }
        ("check", [key, input, tagfile]) => {
            let data = read(input)?;
            let tag = Tag::from_bytes(&read(tagfile)?).map_err(|e| Failure::other(format!("{tagfile}: {e}")))?;
            let valid = Key::open(key).and_then(|k| k.check(&data, &tag)).map_err(on_key(key))?;
            if !valid {
                return Err(Failure { code: 5, message: "tag is not valid".into() });
            }
            say(format!("valid version={}", tag.key_version()))
        }
        ("public", [key]) => {
            let public = Key::open(key).and_then(|k| k.public_key(None)).map_err(on_key(key))?;
            say(public.to_pem().trim_end().to_string())
        }
        ("sha256", [input]) => {
            let digest = wasmzip_guest::sha256(read(input)?);
            say(format!("{}  {input}", to_hex(&digest)))
        }
        ("seal" | "open" | "sign" | "verify" | "tag" | "check" | "public" | "sha256", _) => {
            Err(Failure::usage(format!("wrong number of arguments for `{command}`")))
        }
        _ => Err(Failure::usage(format!("unknown command `{command}`"))),
    }
}
