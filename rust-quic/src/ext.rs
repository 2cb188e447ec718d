//! Ext memory: zeroed, pointer-aligned bytes the C side owns the meaning of
//! (usockets' "ext"). Stable address for the lifetime of its object.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ffi::c_void;
use std::ptr::NonNull;

pub struct Ext {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Ext {
    pub fn new(size: usize) -> Ext {
        // 16-byte alignment covers every scalar the C side may store there.
        let layout = Layout::from_size_align(size.max(16), 16).expect("ext size");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Ext { ptr, layout }
    }

    pub fn ptr(&self) -> *mut c_void {
        self.ptr.as_ptr().cast()
    }
}

impl Drop for Ext {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
