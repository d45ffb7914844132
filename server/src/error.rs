//! The errors of starting and steering a server.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why a server could not start or be steered.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// The address could not be bound.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The runtime or its thread could not be started.
    Runtime(io::Error),
    /// The server's runtime thread is gone (it panicked or was shut down).
    Stopped,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServerError::Runtime(e) => write!(f, "cannot start the server runtime: {e}"),
            ServerError::Stopped => f.write_str("the server has stopped"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Bind { source, .. } | ServerError::Runtime(source) => Some(source),
            ServerError::Stopped => None,
        }
    }
}
