//! Ext memory: zeroed, 16-byte-aligned bytes the C side owns the meaning of
//! (usockets' "ext"). Small ext (what the runtime asks for: a pointer or two)
//! lives inside its object, so a stream or connection costs no allocation for
//! it; larger ext is allocated. Its address is stable for the object's life:
//! every holder (context, connection, stream) is boxed and never moves.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::ptr::NonNull;

/// Ext sizes up to this many bytes are kept inline.
pub const INLINE_EXT_BYTES: usize = 32;

pub struct Ext {
    storage: Storage,
}

enum Storage {
    /// 16-byte alignment covers every scalar the C side may store there.
    /// UnsafeCell: the C side writes through the pointer `ptr` hands out.
    Inline(UnsafeCell<[u128; INLINE_EXT_BYTES / 16]>),
    Heap {
        ptr: NonNull<u8>,
        layout: Layout,
    },
}

impl Ext {
    pub fn new(size: usize) -> Ext {
        if size <= INLINE_EXT_BYTES {
            return Ext { storage: Storage::Inline(UnsafeCell::new([0; INLINE_EXT_BYTES / 16])) };
        }
        let layout = Layout::from_size_align(size, 16).expect("ext size");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Ext { storage: Storage::Heap { ptr, layout } }
    }

    /// The ext bytes. Inline ones move with the `Ext`: ask for the pointer
    /// once the holder is in its box (as every holder is).
    pub fn ptr(&self) -> *mut c_void {
        match &self.storage {
            Storage::Inline(cell) => cell.get().cast(),
            Storage::Heap { ptr, .. } => ptr.as_ptr().cast(),
        }
    }
}

impl Drop for Ext {
    fn drop(&mut self) {
        if let Storage::Heap { ptr, layout } = &self.storage {
            // SAFETY: allocated in `new` with this layout.
            unsafe { dealloc(ptr.as_ptr(), *layout) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_is_zeroed_aligned_and_writable_inline_and_on_the_heap() {
        for size in [0, 8, INLINE_EXT_BYTES, INLINE_EXT_BYTES + 1, 4096] {
            let ext = Box::new(Ext::new(size));
            let p = ext.ptr().cast::<u8>();
            assert_eq!(p as usize % 16, 0, "size {size}");
            let len = size.max(1);
            // SAFETY: `len` bytes of ext are ours to read and write.
            unsafe {
                assert!(std::slice::from_raw_parts(p, len).iter().all(|&b| b == 0));
                p.write_bytes(0xab, len);
                assert_eq!(*p.add(len - 1), 0xab);
            }
            assert_eq!(ext.ptr().cast::<u8>(), p, "stable while boxed");
            assert_eq!(matches!(ext.storage, Storage::Inline(_)), size <= INLINE_EXT_BYTES);
        }
    }
}
