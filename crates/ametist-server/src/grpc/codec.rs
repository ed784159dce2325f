//! The protobuf codec of the gRPC services: prost's, except that a message that does not
//! decode is INVALID_ARGUMENT (bad input from the client) rather than tonic's INTERNAL,
//! which would read as a fault of the server.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

pub struct QdrantCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for QdrantCodec<T, U> {
    fn default() -> Self {
        QdrantCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for QdrantCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = QdrantDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        QdrantDecoder(ProstCodec::<T, U>::raw_decoder(BufferSettings::default()))
    }
}

pub struct QdrantDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for QdrantDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(src).map_err(|e| match e.code() {
            Code::Internal => Status::invalid_argument(format!("Format error in request: {}", e.message())),
            _ => e,
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
