//! The `#[vmtest]` attribute.
use proc_macro::TokenStream;

/// Turns an `async fn(vm: &Vm)` into a test that boots a VM.
#[proc_macro_attribute]
pub fn vmtest(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
