//! Random and mutated cluster files (filled in below).
