//! Reading an answer's body under a size limit: the client never holds more of a hostile
//! server's (or wallet's, or facilitator's) answer than it means to read.

/// Why a body was not read whole.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The transport failed while the body arrived.
    Transport(reqwest::Error),
    /// The body is longer than the limit, in bytes.
    TooLarge(usize),
}

impl ReadError {
    /// The message for a body over the limit.
    pub(crate) fn too_large(limit: usize) -> String {
        format!("an answer over {limit} bytes")
    }
}

/// The whole body of `response`, if it is at most `limit` bytes.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
