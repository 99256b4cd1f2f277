fn main() {
    print!("{}", quay_operator::api::crd_yaml());
}
