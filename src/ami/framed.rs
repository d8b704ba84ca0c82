//! `tokio_util::codec` adapter, so a driver can wrap a `TcpStream` in
//! `Framed<_, AmiCodec>`. All logic lives in [`Decoder`] and [`Action`]; this
//! file only translates types.
//!
//! Note: `FramedRead` ends the stream on any error. A driver that wants the
//! decoder's resynchronisation after a non-fatal error (oversized message)
//! should drive [`Decoder`] directly, as [`super::Session`] does.

use bytes::BytesMut;
use thiserror::Error;

use super::action::{Action, EncodeError};
use super::codec::{DecodeError, Decoder, Frame};

#[derive(Debug, Error)]
pub enum CodecError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Default)]
pub struct AmiCodec {
    decoder: Decoder,
}

impl AmiCodec {
    pub fn new(decoder: Decoder) -> Self {
        AmiCodec { decoder }
    }
}

impl tokio_util::codec::Decoder for AmiCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(self.decoder.decode(src)?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        // A half message at EOF is dropped: AMI has no way to finish it.
        let frame = self.decoder.decode(src)?;
        if frame.is_none() {
            src.clear();
        }
        Ok(frame)
    }
}

impl tokio_util::codec::Encoder<&Action> for AmiCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Action, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(item.encode(dst)?)
    }
}

impl tokio_util::codec::Encoder<Action> for AmiCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Action, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(item.encode(dst)?)
    }
}
