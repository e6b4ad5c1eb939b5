fn main() {
    println!("{}", lb_userspace::XDP_OBJECT.len());
}
