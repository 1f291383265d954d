//! `secretexec render`: the resolved variables (not the inherited
//! environment) in a format other tools read, to stdout or to a 0600 file
//! written atomically. `as = "file"` variables are rendered with their
//! content, since the in-memory file would not outlive this process.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::cli::RenderFormat;
use crate::dotenv;
use crate::error::Error;
use crate::resolve::Resolution;

/// Renders every set variable. Errors name the variable, never its value.
pub fn render(res: &Resolution, format: RenderFormat) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(Vec::new());
    let values: Vec<(&str, &[u8])> = res.values().map(|(n, v)| (n, v.bytes())).collect();
    match format {
        RenderFormat::Dotenv => {
            for (name, value) in &values {
                dotenv::write_entry(&mut out, name, value);
            }
        }
        RenderFormat::Shell => {
            for (name, value) in &values {
                out.extend_from_slice(b"export ");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"='");
                for &b in *value {
                    if b == b'\'' {
                        out.extend_from_slice(b"'\\''");
                    } else {
                        out.push(b);
                    }
                }
                out.extend_from_slice(b"'\n");
            }
        }
        RenderFormat::Systemd => {
            for (name, value) in &values {
                let text = std::str::from_utf8(value).map_err(|_| {
                    Error::Usage(format!("{name}: systemd's EnvironmentFile= accepts only UTF-8 values; use --format dotenv or shell"))
                })?;
                if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                    return Err(Error::Usage(format!(
                        "{name}: the value holds a control character that systemd's EnvironmentFile= rejects"
                    )));
                }
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"=\"");
                for &b in *value {
                    if matches!(b, b'"' | b'\\' | b'`' | b'$') {
                        out.push(b'\\');
                    }
                    out.push(b);
                }
                out.extend_from_slice(b"\"\n");
            }
        }
        RenderFormat::Json => {
            let mut map = serde_json::Map::new();
            for (name, value) in &values {
                let text = std::str::from_utf8(value)
                    .map_err(|_| Error::Usage(format!("{name}: the value is not UTF-8 and cannot be a JSON string; use --format dotenv or shell")))?;
                map.insert((*name).to_owned(), serde_json::Value::String(text.to_owned()));
            }
            let obj = serde_json::Value::Object(map);
            serde_json::to_writer_pretty(&mut *out, &obj).expect("writing JSON to a Vec cannot fail");
            out.push(b'\n');
            // serde_json's intermediate Strings are dropped unzeroized; the
            // copies are short-lived and the process exits right after.
        }
    }
    Ok(out)
}

/// Writes `bytes` to `path` with mode 0600: a temporary file in the same
/// directory (created 0600, never wider), fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |about: String| move |err| Error::Io { about, err };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name =
        path.file_name().ok_or_else(|| Error::Usage(format!("{}: not a file name", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.secretexec-{}-{:x}",
        name.to_string_lossy(),
        std::process::id(),
        crate::random_u64()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io(format!("cannot create {}", tmp.display())))?;
    let result = (|| {
        file.write_all(bytes).map_err(io(format!("cannot write {}", tmp.display())))?;
        file.sync_all().map_err(io(format!("cannot fsync {}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(io(format!("cannot rename into {}", path.display())))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
