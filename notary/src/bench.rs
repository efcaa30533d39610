//! The end-to-end transfer benchmark (see issue [notary]).
