//! Hooks into the layer's private parts for this crate's own benchmarks (feature `internals`).
//!
//! Not a public API: hidden from the docs and outside semver.

use http::Method;

use crate::layer::guard::SettledInvoices;
use crate::price::{PriceTag, RouteError, RouteTable, RouteTableBuilder};

/// The layer's route table: method + path → price tag.
#[derive(Debug)]
pub struct RouteMatcher {
    table: RouteTable,
}

impl RouteMatcher {
    /// Builds the table from `(route, tag)` pairs, as `X402LayerBuilder::route` does.
    pub fn new<'a>(
        routes: impl IntoIterator<Item = (&'a str, PriceTag)>,
    ) -> Result<Self, RouteError> {
        let mut builder = RouteTableBuilder::default();
        for (route, tag) in routes {
            builder.add(route, tag)?;
        }
        Ok(Self {
            table: builder.build()?,
        })
    }

    /// The price tag of a request, if its route is priced.
    pub fn find(&self, method: &Method, path: &str) -> Option<&PriceTag> {
        self.table.find(method, path).map(|tag| &**tag)
    }
}

/// The layer's memory of settled invoices (payment hashes), bounded by a count.
#[derive(Debug)]
pub struct SettledMemory {
    settled: SettledInvoices,
}

impl SettledMemory {
    /// Remembers at most `capacity` invoices.
    pub fn new(capacity: usize) -> Self {
        Self {
            settled: SettledInvoices::new(capacity),
        }
    }

    /// Remembers a settled payment hash, forgetting the oldest beyond the capacity.
    pub fn insert(&self, hash: [u8; 32]) {
        self.settled.insert(hash);
    }

    /// Whether `hash` is remembered.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.settled.contains(hash)
    }

    /// How many invoices are remembered.
    pub fn len(&self) -> usize {
        self.settled.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
