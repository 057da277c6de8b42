//! Every recipe shipped in `recipes/` parses and passes the recipe checks (unknown keys are
//! errors, so a renamed setting breaks this test rather than a user's run).

use model::testing::repo_root;

#[test]
fn shipped_recipes_are_valid() {
    let mut n = 0;
    let mut dirs = vec![repo_root().join("recipes")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                train::Recipe::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                n += 1;
            }
        }
    }
    assert!(n >= 5, "{n} recipes");
}
