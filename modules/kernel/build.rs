// sqlx::migrate! embeds the migrations at compile time: rebuild when one changes
// (docs/architecture.md, "Database").
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
