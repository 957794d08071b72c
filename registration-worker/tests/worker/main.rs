//! The registration worker's tests, one binary: the process and the queued path end to end
//! (`service`), and the batch statement's outcomes and races (`persist`).

mod persist;
mod service;
