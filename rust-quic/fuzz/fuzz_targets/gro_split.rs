//! The C loop's UDP GRO split (udp.c `us_internal_split_datagrams`): a received
//! buffer of any length, with any segment size the kernel could report, split
//! into views. The views must tile the buffer in order, each one segment long
//! but the last, never past the view table, and never outside the buffer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::ffi::{c_char, c_int};

extern "C" {
    fn us_internal_split_datagrams(
        data: *mut c_char,
        total: c_int,
        segment: c_int,
        slot: c_int,
        view_data: *mut *mut c_char,
        view_len: *mut c_int,
        view_slot: *mut c_int,
        views: c_int,
        max_views: c_int,
    ) -> c_int;
}

// Keeps usockets-sys (which builds udp.c) linked in.
use usockets_sys as _;

fuzz_target!(|input: &[u8]| {
    if input.len() < 6 {
        return;
    }
    let segment = c_int::from(i16::from_le_bytes([input[0], input[1]]));
    let already = c_int::from(input[2] % 8);
    let max_views = c_int::from(input[3] % 64) + already;
    let total = c_int::from(u16::from_le_bytes([input[4], input[5]])) % 65_536;
    let mut buf = vec![0u8; total as usize];
    let mut data = vec![std::ptr::null_mut::<c_char>(); max_views as usize];
    let mut len = vec![-1; max_views as usize];
    let mut slot = vec![-1; max_views as usize];
    let n = unsafe {
        us_internal_split_datagrams(
            buf.as_mut_ptr().cast(),
            total,
            segment,
            7,
            data.as_mut_ptr(),
            len.as_mut_ptr(),
            slot.as_mut_ptr(),
            already,
            max_views,
        )
    };
    assert!(n >= already && n <= max_views, "view count {n} outside [{already}, {max_views}]");
    let seg = if segment > 0 { segment } else { total };
    let base = buf.as_ptr() as usize;
    let mut expect_off = 0usize;
    for i in already as usize..n as usize {
        assert_eq!(data[i] as usize, base + expect_off, "views tile the buffer in order");
        assert!(len[i] > 0 && len[i] <= seg, "view {i} length {}", len[i]);
        assert_eq!(slot[i], 7);
        expect_off += len[i] as usize;
        assert!(expect_off <= total as usize, "a view past the buffer");
        if expect_off < total as usize {
            assert_eq!(len[i], seg, "only the last view may be short");
        }
    }
    if n < max_views {
        assert_eq!(expect_off, total as usize, "the whole buffer is covered unless the table filled");
    }
    assert!(len[n as usize..].iter().all(|&l| l == -1), "nothing written past the count");
});
