//! Distributed offline jobs (next commit).
