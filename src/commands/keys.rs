//! `wasmzip keys`: the life-cycle of host-held keys: create, list, export public keys, rotate, delete.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use wasmzip_keystore::{KeyInfo, KeyName, KeyType};

use crate::options::KeystoreOptions;

/// Manage the keys guests use by name (software keystore or PKCS#11 token).
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
    #[command(flatten)]
    pub keystore: KeystoreOptions,
}

/// A `keys` subcommand.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key with version 1 (a software keystore is created on first use).
    Create {
        /// Key name: letters, digits, `-`, `_`, `.`.
        name: KeyName,
        /// Key type.
        #[arg(long = "type", value_name = "TYPE", value_parser = |s: &str| s.parse::<KeyType>())]
        key_type: KeyType,
    },
    /// List keys with their types and versions.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a signing key's public key as PEM (the newest version by default).
    Public {
        /// Key name.
        name: KeyName,
        /// Version to export.
        #[arg(long, value_name = "N")]
        version: Option<u32>,
    },
    /// Add a new version that signs, seals and tags from now on; older versions still verify and open.
    Rotate {
        /// Key name.
        name: KeyName,
    },
    /// Delete every version of a key.
    Delete {
        /// Key name.
        name: KeyName,
    },
}

fn describe(info: &KeyInfo) -> String {
    format!("{} ({}, version {})", info.name, info.key_type, info.current())
}

/// Runs the command.
pub fn run(args: KeysArgs) -> Result<u8> {
    let create = matches!(args.command, KeysCommand::Create { .. });
    let store = args.keystore.open(create)?;
    match args.command {
        KeysCommand::Create { name, key_type } => {
            let info = store.create(&name, key_type)?;
            println!("created {} in {}", describe(&info), store.describe());
        }
        KeysCommand::List { json } => {
            let keys = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("no keys in {}", store.describe());
            } else {
                println!("{:<32} {:<12} {:>7}  VERSIONS", "NAME", "TYPE", "CURRENT");
                for k in keys {
                    let versions: Vec<String> = k.versions.iter().map(u32::to_string).collect();
                    println!("{:<32} {:<12} {:>7}  {}", k.name.as_str(), k.key_type.as_str(), k.current(), versions.join(","));
                }
            }
        }
        KeysCommand::Public { name, version } => {
            let info = store.info(&name)?;
            if !info.key_type.is_signing() {
                bail!("key `{name}` is a {} key and has no public key", info.key_type);
            }
            print!("{}", store.public_key(&name, version)?.to_pem());
        }
        KeysCommand::Rotate { name } => {
            let info = store.rotate(&name)?;
            let (new, old) = match info.key_type {
                KeyType::Ed25519 | KeyType::P256 => ("signs", "verify"),
                KeyType::Aes256Gcm => ("seals", "open"),
                KeyType::HmacSha256 => ("tags", "check"),
            };
            println!("rotated {}: version {} now {new}; older versions still {old}", info.name, info.current());
        }
        KeysCommand::Delete { name } => {
            let info = store.delete(&name)?;
            println!("deleted {} (versions {})", info.name, info.versions.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
        }
    }
    Ok(0)
}
