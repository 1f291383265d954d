//! age interop (filled below).
