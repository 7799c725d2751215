fn main() {
    let p = std::env::args().nth(1).expect("input file");
    msrpd_fuzz::relay::relay(&std::fs::read(p).unwrap());
}
