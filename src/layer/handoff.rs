//! What one X402 layer leaves in a request for another layer inside it: the payment headers a
//! layer took off a request it did not price (so that a `charge(..)` layer on the route inside
//! still sees them, while handlers never do), and a mark on a request it prices (so that a
//! route priced twice is refused loudly instead of asking the client to pay twice).
//!
//! Both are extensions of crate-private types: a handler cannot read them.

use http::{Extensions, HeaderMap, HeaderValue, Request};

use crate::header::{PAYMENT_SIGNATURE, X_PAYMENT, carries_payment, strip_payment_headers};

/// The payment headers of a request some X402 layer let through unpriced.
#[derive(Clone, Debug)]
struct SetAside(HeaderMap);

/// The mark of a request an X402 layer prices.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PricedHere;

/// Takes the payment headers off a request, keeping them aside in its extensions for a layer
/// further in (one that prices the request puts them back with [`restore_payment_headers`]).
pub(crate) fn set_aside_payment_headers(headers: &mut HeaderMap, extensions: &mut Extensions) {
    if carries_payment(headers) {
        extensions.insert(take_aside(headers));
    }
}

/// [`set_aside_payment_headers`] on a whole request. On a free route's path: a request without
/// a payment header (nearly all) costs one scan of its header names.
#[inline]
pub(crate) fn set_aside_request_payment_headers<B>(request: &mut Request<B>) {
    if carries_payment(request.headers()) {
        let aside = take_aside(request.headers_mut());
        request.extensions_mut().insert(aside);
    }
}

/// The payment headers of `headers`, taken off them.
#[cold]
fn take_aside(headers: &mut HeaderMap) -> SetAside {
    let mut aside = HeaderMap::new();
    for name in [X_PAYMENT, PAYMENT_SIGNATURE] {
        for value in headers.get_all(name) {
            aside.append(name, value.clone());
        }
    }
    strip_payment_headers(headers);
    SetAside(aside)
}

/// Puts back the payment headers an outer layer set aside, unless the request carries its own.
pub(crate) fn restore_payment_headers(headers: &mut HeaderMap, extensions: &mut Extensions) {
    let Some(SetAside(aside)) = extensions.remove::<SetAside>() else {
        return;
    };
    if carries_payment(headers) {
        return;
    }
    for (name, value) in aside.iter() {
        headers.append(name.clone(), HeaderValue::clone(value));
    }
}
