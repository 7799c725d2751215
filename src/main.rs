//! The `msrpd` binary.

fn main() {
    println!("msrpd {}", env!("CARGO_PKG_VERSION"));
}
