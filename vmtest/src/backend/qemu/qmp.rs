//! A minimal QMP client: enough to ask QEMU things and to power the guest off.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Why a QMP exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QmpError {
    /// The socket is not there or refuses connections (QEMU not up yet, or gone).
    #[error("connecting to {}: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("talking to QEMU: {0}")]
    Io(#[source] std::io::Error),
    /// QEMU closed the socket.
    #[error("QEMU closed the QMP socket")]
    Closed,
    /// QEMU did not answer in time.
    #[error("no answer within 30 s")]
    NoAnswer,
    /// QEMU answered with an error.
    #[error("QEMU refused: {0}")]
    Refused(Value),
    /// QEMU said something that is not QMP.
    #[error("unexpected QMP message {0:?}")]
    Protocol(String),
}

/// One QMP connection, past capability negotiation.
pub(crate) struct Qmp {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl Qmp {
    /// Connects and negotiates capabilities.
    pub async fn connect(socket: &Path) -> Result<Self, QmpError> {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|source| QmpError::Connect {
                socket: socket.to_owned(),
                source,
            })?;
        let (r, w) = stream.into_split();
        let mut qmp = Qmp {
            reader: BufReader::new(r),
            writer: w,
        };
        let greeting = qmp.read_message().await?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    /// Runs a command and returns its `return` value (events arriving meanwhile are skipped).
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut line = msg.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .await
            .map_err(QmpError::Io)?;
        loop {
            let reply = self.read_message().await?;
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                return Err(QmpError::Refused(err.clone()));
            }
        }
    }

    /// A human monitor command (for data QMP has no command for, such as `info usernet`).
    pub async fn hmp(&mut self, command_line: &str) -> Result<String, QmpError> {
        let ret = self
            .execute(
                "human-monitor-command",
                Some(json!({ "command-line": command_line })),
            )
            .await?;
        Ok(ret.as_str().unwrap_or_default().to_owned())
    }

    async fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(30), self.reader.read_line(&mut line))
            .await
            .map_err(|_| QmpError::NoAnswer)?
            .map_err(QmpError::Io)?;
        if n == 0 {
            return Err(QmpError::Closed);
        }
        serde_json::from_str(&line).map_err(|_| QmpError::Protocol(line))
    }
}

/// Finds the host port QEMU bound for a `hostfwd` to `guest_port` in `info usernet` output.
///
/// The lines look like
/// `  TCP[HOST_FORWARD]   8       127.0.0.1 35355       10.0.2.15    22     0     0`.
pub(crate) fn forwarded_port(info_usernet: &str, guest_port: u16) -> Option<u16> {
    info_usernet.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !fields.first()?.starts_with("TCP[HOST_FORWARD]") || fields.len() < 6 {
            return None;
        }
        (fields[5].parse::<u16>().ok()? == guest_port)
            .then(|| fields[3].parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_forwarded_port() {
        let out = "Hub -1 (n0):\r\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n  TCP[HOST_FORWARD]   8       127.0.0.1 35355       10.0.2.15    22     0     0\r\n";
        assert_eq!(super::forwarded_port(out, 22), Some(35355));
        assert_eq!(super::forwarded_port(out, 80), None);
    }
}
