//! `marr.v1.Operations`: consistent online backups for administrators.

use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::app::Application;
use crate::auth::Caller;
use crate::proto;
use crate::proto::operations_server::Operations;

/// Bytes per streamed chunk of a backup.
const CHUNK: usize = 1024 * 1024;

pub struct OperationsService {
    app: Application,
}

impl OperationsService {
    pub fn new(app: Application) -> Self {
        Self { app }
    }
}

type Chunk = Result<proto::BackupResponse, Status>;

/// Sends what the backup writes as chunks; a client that left makes the next write fail.
struct ChunkSender {
    out: mpsc::Sender<Chunk>,
    buffer: Vec<u8>,
}

impl ChunkSender {
    fn send_buffer(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.out
            .blocking_send(Ok(proto::BackupResponse { data }))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.send_buffer()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buffer()
    }
}

type BackupStream = Pin<Box<dyn Stream<Item = Chunk> + Send>>;

#[tonic::async_trait]
impl Operations for OperationsService {
    type BackupStream = BackupStream;

    async fn backup(
        &self,
        request: Request<proto::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let caller = Caller::of(&request)?;
        let backup = self.app.backup(&caller).await;
        let backup = self.app.conclude(&caller, backup).await?;
        let (out, chunks) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut sender = ChunkSender {
                out: out.clone(),
                buffer: Vec::with_capacity(CHUNK),
            };
            match backup.write_to(&mut sender) {
                Ok(summary) => tracing::info!(%summary, "backup sent"),
                Err(error) => {
                    tracing::warn!(%error, "backup stopped");
                    let _ = out.blocking_send(Err(error.into()));
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(chunks))))
    }
}
