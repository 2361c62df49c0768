//! Golden files: compared byte for byte; `CELL_UPDATE_GOLDEN=1` rewrites them.

pub fn check(path: &str, actual: &str) {
    if std::env::var("CELL_UPDATE_GOLDEN").as_deref() == Ok("1") {
        if let Some(dir) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("golden file {path} is missing ({e}); run the tests with CELL_UPDATE_GOLDEN=1 to create it")
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{path} is out of date (first difference at line {}):\n  expected: {:?}\n  actual:   {:?}\n\
             if the change is intended, run the tests with CELL_UPDATE_GOLDEN=1 and commit the result",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}
