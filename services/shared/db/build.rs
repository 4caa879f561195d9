// `sqlx::migrate!` embeds the migrations at compile time, but cargo does not know it reads
// that directory: without this, a new migration file is left out until sb-db is rebuilt.
fn main() {
    println!("cargo:rerun-if-changed=../../../migrations");
}
