//! The core's vocabulary, a leaf that imports nothing else of the core: what the stores keep,
//! who is calling and what was decided, limits, the audit log and pages of a listing. Every
//! other module speaks these types, so they are re-exported here under one path.

mod audit;
mod limits;
mod page;
mod principal;
mod quota;
mod records;
mod secrets;

pub use audit::*;
pub use limits::*;
pub use page::*;
pub use principal::*;
pub use quota::*;
pub use records::*;
pub use secrets::*;
