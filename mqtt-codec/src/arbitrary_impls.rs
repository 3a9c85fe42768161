//! `arbitrary::Arbitrary` for packets: generates valid packets only (used by fuzz/).
