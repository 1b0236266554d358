//! The voxel bytes of a MetaImage: one or more data files ("chunks": the `.mha`
//! itself for LOCAL, one `.raw`, or one file per slice for LIST / printf
//! patterns), each raw or zlib/gzip-compressed. Every size is checked against
//! the file lengths before anything is allocated.

use crate::{Error, Result};
use flate2::bufread::{MultiGzDecoder, ZlibDecoder};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// deflate cannot expand by more than ~1032:1; anything claiming more is a
/// truncated file or a wrong DimSize, and is refused before allocating.
const MAX_INFLATE_RATIO: u64 = 1040;

#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub path: PathBuf,
    /// Data inside the header file itself (`ElementDataFile = LOCAL`).
    pub local: bool,
}

#[derive(Debug)]
pub(crate) struct Payload<'a> {
    pub header_path: &'a Path,
    pub chunks: Vec<Chunk>,
    /// Uncompressed bytes each chunk holds.
    pub chunk_bytes: u64,
    pub compressed: bool,
    /// `CompressedDataSize`, used only when the whole image is one chunk.
    pub compressed_size: Option<u64>,
    /// `HeaderSize`: > 0 skips that many bytes from the start of each data file,
    /// -1 means the data are the last bytes of the file (MetaIO semantics).
    pub header_size: i64,
    /// Where LOCAL data begin (just after the header).
    pub local_offset: u64,
}

/// What [`Payload::plan`] checked: for each data file, where its bytes start
/// and which range `a .. b` of its uncompressed bytes is wanted.
pub(crate) struct Plan {
    parts: Vec<Part>,
}

struct Part {
    chunk: usize,
    loc: Located,
    a: u64,
    b: u64,
}

struct Located {
    start: u64,
    /// Bytes stored (compressed or not) from `start` on that belong to this chunk.
    stored: u64,
}

impl Payload<'_> {
    fn describe(&self, chunk: &Chunk) -> String {
        if chunk.local {
            "the image data after the header".to_string()
        } else {
            format!("data file {}", chunk.path.display())
        }
    }

    fn locate(&self, chunk: &Chunk) -> Result<Located> {
        let meta = match std::fs::metadata(&chunk.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::invalid(
                    self.header_path,
                    format!("data file {} (named by ElementDataFile) does not exist", chunk.path.display()),
                ));
            }
            Err(e) => return Err(Error::io(&chunk.path, e)),
        };
        if !meta.is_file() {
            return Err(Error::invalid(self.header_path, format!("data file {} is not a file", chunk.path.display())));
        }
        let len = meta.len();
        let single = self.chunks.len() == 1;
        let declared_compressed = if single { self.compressed_size.filter(|&s| s > 0) } else { None };
        let start = if self.header_size > 0 {
            self.header_size as u64
        } else if self.header_size == -1 {
            let tail = if self.compressed {
                declared_compressed.ok_or_else(|| {
                    Error::unsupported(self.header_path, "HeaderSize = -1 with compressed data needs CompressedDataSize")
                })?
            } else {
                self.chunk_bytes
            };
            len.checked_sub(tail).ok_or_else(|| self.truncated(chunk, len, tail))?
        } else if chunk.local {
            self.local_offset
        } else {
            0
        };
        let available = len.saturating_sub(start);
        if self.compressed {
            // A wrong CompressedDataSize is tolerated: inflating stops at the
            // end of the stream or of the file, whichever comes first.
            let stored = declared_compressed.map_or(available, |s| s.min(available));
            if self.chunk_bytes > stored.saturating_mul(MAX_INFLATE_RATIO).saturating_add(4096) {
                return Err(Error::invalid(
                    self.header_path,
                    format!(
                        "{} is truncated or DimSize is wrong: {stored} compressed bytes cannot inflate to the {} bytes DimSize x ElementType needs",
                        self.describe(chunk),
                        self.chunk_bytes
                    ),
                ));
            }
            Ok(Located { start, stored })
        } else if available < self.chunk_bytes {
            Err(self.truncated(chunk, available, self.chunk_bytes))
        } else {
            // Surplus bytes are ignored, as ITK does (elastix' mask_fixed.raw is 12 bytes long).
            Ok(Located { start, stored: self.chunk_bytes })
        }
    }

    fn truncated(&self, chunk: &Chunk, have: u64, need: u64) -> Error {
        Error::invalid(
            self.header_path,
            format!(
                "{} is truncated: it holds {have} bytes, DimSize x ElementType needs {need}",
                self.describe(chunk)
            ),
        )
    }

    /// Check every data file needed for bytes `skip .. skip + want` of the
    /// uncompressed image (existence, lengths, compression ratio) without
    /// allocating anything proportional to the image.
    pub fn plan(&self, skip: u64, want: u64) -> Result<Plan> {
        let chunk_bytes = self.chunk_bytes.max(1);
        let end = skip.checked_add(want).ok_or_else(|| Error::invalid(self.header_path, "image too large"))?;
        let first = (skip / chunk_bytes) as usize;
        let last = (end.saturating_sub(1) / chunk_bytes) as usize;
        if want == 0 || last >= self.chunks.len() {
            return Err(Error::invalid(self.header_path, "fewer data files than the image needs"));
        }
        let mut parts = Vec::with_capacity(last - first + 1);
        for i in first..=last {
            let loc = self.locate(&self.chunks[i])?;
            let chunk_start = i as u64 * chunk_bytes;
            let a = skip.max(chunk_start) - chunk_start;
            let b = end.min(chunk_start + chunk_bytes) - chunk_start;
            parts.push(Part { chunk: i, loc, a, b });
        }
        Ok(Plan { parts })
    }

    /// Feed the planned bytes, in file order, to `sink` in blocks whose lengths
    /// are multiples of every element size (so no element is split). Decoding
    /// block by block keeps one copy of the image in memory, not two.
    pub fn stream(&self, plan: &Plan, sink: &mut dyn FnMut(&[u8])) -> Result<()> {
        const BLOCK: usize = 1 << 20;
        let mut buf = vec![0u8; BLOCK];
        for part in &plan.parts {
            let chunk = &self.chunks[part.chunk];
            let mut file = File::open(&chunk.path).map_err(|e| Error::io(&chunk.path, e))?;
            let mut source: Box<dyn Read> = if self.compressed {
                file.seek(SeekFrom::Start(part.loc.start)).map_err(|e| Error::io(&chunk.path, e))?;
                let mut decoder = decoder(file.take(part.loc.stored)).map_err(|e| Error::io(&chunk.path, e))?;
                let skipped = std::io::copy(&mut (&mut decoder).take(part.a), &mut std::io::sink())
                    .map_err(|e| self.bad_stream(chunk, e))?;
                if skipped < part.a {
                    return Err(self.short_inflate(chunk, skipped, part.b));
                }
                decoder
            } else {
                file.seek(SeekFrom::Start(part.loc.start + part.a)).map_err(|e| Error::io(&chunk.path, e))?;
                Box::new(file)
            };
            let mut done = part.a;
            while done < part.b {
                let len = (part.b - done).min(BLOCK as u64) as usize;
                let got = fill(&mut source, &mut buf[..len]).map_err(|e| {
                    if self.compressed {
                        self.bad_stream(chunk, e)
                    } else {
                        Error::io(&chunk.path, e)
                    }
                })?;
                if got < len {
                    return Err(if self.compressed {
                        self.short_inflate(chunk, done + got as u64, part.b)
                    } else {
                        // The file shrank between the size check and the read.
                        self.truncated(chunk, done + got as u64, part.b)
                    });
                }
                sink(&buf[..len]);
                done += len as u64;
            }
        }
        Ok(())
    }

    fn bad_stream(&self, chunk: &Chunk, e: std::io::Error) -> Error {
        Error::invalid(self.header_path, format!("{}: bad compressed data: {e}", self.describe(chunk)))
    }

    fn short_inflate(&self, chunk: &Chunk, got: u64, need: u64) -> Error {
        Error::invalid(
            self.header_path,
            format!(
                "{} is truncated: its compressed data inflate to {got} bytes, DimSize x ElementType needs {need}",
                self.describe(chunk)
            ),
        )
    }

    /// `ElementDataFile` with `BinaryData = False`: whitespace-separated numbers.
    pub fn read_ascii(&self, skip: usize, count: usize) -> Result<Vec<f64>> {
        let [chunk] = self.chunks.as_slice() else {
            return Err(Error::unsupported(self.header_path, "text (BinaryData = False) data split over several files"));
        };
        if self.compressed {
            return Err(Error::unsupported(self.header_path, "compressed text (BinaryData = False) data"));
        }
        let start = if chunk.local { self.local_offset } else { self.header_size.max(0) as u64 };
        let mut file = File::open(&chunk.path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::invalid(self.header_path, format!("data file {} does not exist", chunk.path.display()))
            } else {
                Error::io(&chunk.path, e)
            }
        })?;
        let len = file.metadata().map_err(|e| Error::io(&chunk.path, e))?.len();
        // Each number takes at least two bytes ("0 "), so the file length bounds
        // what can be there before anything is allocated.
        let need = skip.saturating_add(count) as u64;
        if len.saturating_sub(start) < need.saturating_mul(2).saturating_sub(1) {
            return Err(self.truncated(chunk, len.saturating_sub(start), need.saturating_mul(2).saturating_sub(1)));
        }
        file.seek(SeekFrom::Start(start)).map_err(|e| Error::io(&chunk.path, e))?;
        let mut text = String::new();
        BufReader::new(file).read_to_string(&mut text).map_err(|e| {
            Error::invalid(self.header_path, format!("{}: text data is not UTF-8 ({e})", self.describe(chunk)))
        })?;
        let mut out = Vec::with_capacity(count);
        for word in text.split_whitespace().skip(skip).take(count) {
            out.push(word.parse::<f64>().map_err(|_| {
                Error::invalid(self.header_path, format!("{}: '{word}' is not a number", self.describe(chunk)))
            })?);
        }
        if out.len() < count {
            return Err(Error::invalid(
                self.header_path,
                format!("{} is truncated: {} numbers, DimSize needs {}", self.describe(chunk), skip + out.len(), need),
            ));
        }
        Ok(out)
    }
}

/// The decoder for `stored`: zlib, or gzip (MetaIO's inflateInit2(47) accepts both).
fn decoder(stored: impl Read + 'static) -> std::io::Result<Box<dyn Read>> {
    let mut stored = BufReader::with_capacity(1 << 16, stored);
    let gzip = stored.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip { Box::new(MultiGzDecoder::new(stored)) } else { Box::new(ZlibDecoder::new(stored)) })
}

/// Read until `buf` is full or the input ends; returns the bytes read.
fn fill(source: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match source.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
