// sqlx::migrate! embeds the migrations at compile time: rebuild when one changes (STACK.md P3).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
