//! HPACK's Huffman code (RFC 7541 5.2, Appendix B), decoded straight into the
//! caller's buffer: QPACK string literals use it, and decoding must not cost an
//! allocation per string.
//!
//! The code itself is read once from quiche's own encoder (octets), which keeps
//! its tables private: each symbol's bits are what the encoder writes for it,
//! and its length is where that differs from the symbol followed by one whose
//! code starts with a 0 bit. From the codes a decoding automaton is built that
//! consumes four bits per step (the shortest code is five bits, so a step ends
//! at most one symbol).

use std::sync::OnceLock;

/// Appends the decoding of `input` to `out` and returns its length, refusing
/// more than `max_len` bytes.
pub fn decode(input: &[u8], max_len: usize, out: &mut Vec<u8>) -> Result<usize, DecodeFailure> {
    let machine = machine();
    let start = out.len();
    let mut state = 0usize;
    for &byte in input {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = machine.steps[state][usize::from(nibble)];
            if step.flags & STEP_INVALID != 0 {
                return Err(DecodeFailure::Invalid);
            }
            if step.flags & STEP_EMITS != 0 {
                if out.len() - start >= max_len {
                    return Err(DecodeFailure::TooLong);
                }
                out.push(step.symbol);
            }
            state = usize::from(step.next);
        }
    }
    if !machine.may_end[state] {
        return Err(DecodeFailure::Invalid);
    }
    Ok(out.len() - start)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeFailure {
    /// Not a Huffman string: an EOS symbol, or padding longer than seven bits
    /// or not all ones (RFC 7541 5.2).
    Invalid,
    /// Longer than allowed.
    TooLong,
}

const STEP_EMITS: u8 = 1;
const STEP_INVALID: u8 = 2;

#[derive(Clone, Copy, Default)]
struct Step {
    next: u16,
    symbol: u8,
    flags: u8,
}

/// States are the inner nodes of the code tree (0 is the root); a step feeds
/// one nibble.
struct Machine {
    steps: Vec<[Step; 16]>,
    /// The input may end here: the bits since the last symbol are all ones
    /// and fewer than eight (a prefix of EOS used as padding).
    may_end: Vec<bool>,
}

/// A node of the code tree: children by bit, each an inner node or a leaf.
#[derive(Clone, Copy)]
enum Child {
    Missing,
    Inner(u16),
    Leaf(u8),
}

fn machine() -> &'static Machine {
    static MACHINE: OnceLock<Machine> = OnceLock::new();
    MACHINE.get_or_init(|| build(&codes()))
}

/// Each symbol's code as (bits, length), from quiche's encoder.
fn codes() -> Vec<(u32, u32)> {
    let encode = |input: &[u8]| -> Vec<u8> {
        let mut buf = [0u8; 16];
        let mut out = octets::OctetsMut::with_slice(&mut buf);
        out.put_huffman_encoded::<false>(input).expect("room for two symbols");
        let n = out.off();
        buf[..n].to_vec()
    };
    let bit = |bytes: &[u8], i: u32| bytes.get((i / 8) as usize).is_none_or(|b| b >> (7 - i % 8) & 1 == 1);
    // A symbol whose code starts with 0 (padding is all ones, so it marks where a code ends).
    let zero_led = (0u8..=255).find(|&s| encode(&[s])[0] & 0x80 == 0).expect("a code starting with 0");
    (0u8..=255)
        .map(|symbol| {
            let alone = encode(&[symbol]);
            let followed = encode(&[symbol, zero_led]);
            let len = (0..64).find(|&i| bit(&alone, i) != bit(&followed, i)).expect("codes differ");
            let bits = (0..len).fold(0u32, |acc, i| acc << 1 | u32::from(bit(&alone, i)));
            (bits, len)
        })
        .collect()
}

fn build(codes: &[(u32, u32)]) -> Machine {
    // The code tree.
    let mut tree: Vec<[Child; 2]> = vec![[Child::Missing; 2]];
    for (symbol, &(bits, len)) in codes.iter().enumerate() {
        let mut node = 0usize;
        for i in (0..len).rev() {
            let b = (bits >> i & 1) as usize;
            if i == 0 {
                tree[node][b] = Child::Leaf(symbol as u8);
            } else {
                node = match tree[node][b] {
                    Child::Inner(n) => usize::from(n),
                    _ => {
                        tree.push([Child::Missing; 2]);
                        let n = tree.len() - 1;
                        tree[node][b] = Child::Inner(n as u16);
                        n
                    }
                };
            }
        }
    }
    // Which inner nodes sit on the all-ones path within seven bits of the root.
    let mut may_end = vec![false; tree.len()];
    let (mut node, mut depth) = (0usize, 0);
    while depth < 8 {
        may_end[node] = true;
        match tree[node][1] {
            Child::Inner(n) => node = usize::from(n),
            _ => break,
        }
        depth += 1;
    }
    let steps = (0..tree.len())
        .map(|state| {
            let mut row = [Step::default(); 16];
            for (nibble, step) in row.iter_mut().enumerate() {
                let mut node = state;
                for i in (0..4).rev() {
                    match tree[node][nibble >> i & 1] {
                        Child::Inner(n) => node = usize::from(n),
                        Child::Leaf(symbol) => {
                            step.symbol = symbol;
                            step.flags |= STEP_EMITS;
                            node = 0;
                        }
                        Child::Missing => {
                            step.flags |= STEP_INVALID;
                            break;
                        }
                    }
                }
                step.next = node as u16;
            }
            row
        })
        .collect();
    Machine { steps, may_end }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(input: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; input.len() * 4 + 8];
        let mut out = octets::OctetsMut::with_slice(&mut buf);
        out.put_huffman_encoded::<false>(input).unwrap();
        let n = out.off();
        buf.truncate(n);
        buf
    }

    fn reference(input: &[u8], max: usize) -> Result<Vec<u8>, ()> {
        octets::Octets::with_slice(input).get_huffman_decoded_with_max_length(max).map_err(|_| ())
    }

    fn ours(input: &[u8], max: usize) -> Result<Vec<u8>, ()> {
        let mut out = b"kept".to_vec();
        let n = decode(input, max, &mut out).map_err(|_| ())?;
        assert_eq!(&out[..4], b"kept", "appends");
        assert_eq!(n, out.len() - 4);
        Ok(out[4..].to_vec())
    }

    #[test]
    fn the_code_is_rfc_7541s() {
        let codes = codes();
        // Spot checks from RFC 7541 Appendix B: '0' 00000, 'a' 00011, ' ' 010100,
        // '&' 11111000, 0x00 1111111111000 (13 bits), 0xff 26 bits.
        assert_eq!(codes[usize::from(b'0')], (0b00000, 5));
        assert_eq!(codes[usize::from(b'a')], (0b00011, 5));
        assert_eq!(codes[usize::from(b' ')], (0b010100, 6));
        assert_eq!(codes[usize::from(b'&')], (0b1111_1000, 8));
        assert_eq!(codes[0], (0x1ff8, 13));
        assert_eq!(codes[255].1, 26);
        // A prefix code: Kraft's sum over the 256 symbols and EOS (30 bits) is exactly 1.
        let kraft: f64 = codes.iter().map(|&(_, len)| 0.5f64.powi(len as i32)).sum::<f64>() + 0.5f64.powi(30);
        assert!((kraft - 1.0).abs() < 1e-12, "{kraft}");
        // RFC 7541 C.4.1: "www.example.com".
        assert_eq!(
            encode(b"www.example.com"),
            [0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]
        );
    }

    #[test]
    fn decoding_agrees_with_quiches_decoder() {
        let mut inputs: Vec<Vec<u8>> = (0u8..=255).map(|b| encode(&[b])).collect();
        inputs.push(encode(b"www.example.com"));
        inputs.push(encode(b"/index.html?q=\x00\xff\x7f"));
        inputs.push(encode(&(0u8..=255).collect::<Vec<_>>()));
        inputs.push(vec![]);
        inputs.push(vec![0xff; 4]); // EOS inside the string
        inputs.push(vec![0x1f, 0xff]); // 'a' then nine padding bits
        inputs.push(vec![0x18]); // 'a' then 000 padding (not ones)
        let mut x = 0x2545_f491_u32;
        for _ in 0..3000 {
            let mut v = Vec::new();
            for _ in 0..(x % 12) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                v.push(x as u8);
            }
            inputs.push(v.clone());
            inputs.push(encode(&v));
        }
        for input in &inputs {
            for max in [0, 1, 3, 1 << 16] {
                assert_eq!(ours(input, max), reference(input, max), "input {input:02x?} max {max}");
            }
        }
    }
}
