//! The one contract between weir's XDP programs (`lb-ebpf`) and user space (`lb-userspace`).
//!
//! Everything the kernel side and the user side must agree on lives here and nowhere else:
//! map names and sizes, `#[repr(C)]` map keys and values, counter indices, and the flow hash.
//! The crate is `no_std` so the eBPF program can use it; the `user` feature adds `aya::Pod`
//! impls so user space can put the same types in maps.
#![no_std]

pub mod addr;
pub mod deny;
pub mod hash;
#[cfg(feature = "alloc")]
pub mod maglev;
pub mod maps;
pub mod stats;
pub mod steer;
pub mod syn;
pub mod vip;

pub use addr::Addr;
pub use stats::{Counter, Stat};
pub use vip::{VipEntry, VipInfo, VipKey};

/// IP protocol numbers the data path looks at.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

/// Implements `aya::Pod` for map key/value types when built for user space.
#[cfg(feature = "user")]
macro_rules! user_pod {
    ($($t:ty),* $(,)?) => { $( unsafe impl aya::Pod for $t {} )* };
}
#[cfg(feature = "user")]
user_pod!(
    VipKey,
    VipInfo,
    VipEntry,
    Counter,
    maps::Settings,
    steer::SteerConfig
);
#[cfg(feature = "user")]
user_pod!(
    syn::SynVip,
    syn::SynSettings,
    syn::SrcKey,
    syn::SynBucket,
    syn::InsertBudget,
);
