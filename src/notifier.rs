//! The default Notifier: appends each rendered message to a file in the data dir (a stand-in
//! for a mail service that developers can read).

use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;

use crate::domain::notify::Notification;
use crate::ports::{Notifier, NotifyError};

pub struct FileNotifier {
    pub path: PathBuf,
}

#[async_trait]
impl Notifier for FileNotifier {
    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let text = format!("To: {}\nSubject: {}\n\n{}\n---\n", n.recipient, n.subject, n.body);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(text.as_bytes())
        })
        .await
        .map_err(|e| NotifyError(e.to_string()))?
        .map_err(|e| NotifyError(e.to_string()))
    }
}
