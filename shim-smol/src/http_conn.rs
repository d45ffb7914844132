//! One connection of the built-in transport: plain TCP, or TLS over it.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_io::Async;
use futures_lite::{AsyncRead, AsyncWrite};

/// A connection to the session's origin.
pub(crate) enum Conn {
    Plain(Async<TcpStream>),
    #[cfg(feature = "tls")]
    Tls(Box<futures_rustls::client::TlsStream<Async<TcpStream>>>),
}

impl Conn {
    /// Opens a TCP connection to the first address of `addrs` that answers.
    pub(crate) async fn tcp(addrs: &[SocketAddr]) -> io::Result<Async<TcpStream>> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the host");
        for addr in addrs {
            match Async::<TcpStream>::connect(*addr).await {
                Ok(stream) => {
                    // Small JSON requests: send them at once.
                    let _ = stream.get_ref().set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn tcp_ref(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s.get_ref(),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.get_ref().0.get_ref(),
        }
    }

    /// Whether an idle pooled connection can still be used: the peer has not closed it and
    /// has sent nothing unasked (a TLS alert, a stray byte). Never blocks.
    pub(crate) fn is_reusable(&self) -> bool {
        let mut probe = [0u8; 1];
        match self.tcp_ref().peek(&mut probe) {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_close(cx),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}
