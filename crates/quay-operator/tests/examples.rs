//! Snapshot of the full render of every example in `examples/`: a change in any rendered object shows up as a
//! reviewable diff (`cargo insta review`, or `INSTA_UPDATE=always` then `git diff`).

mod common;

use quay_operator::cli::render_yaml;

#[test]
fn every_example_renders_as_snapshotted() {
    let names = common::example_names();
    assert!(names.len() >= 10, "examples missing: {names:?}");
    for name in names {
        let inputs = common::load_example(&name);
        let (yaml, warnings) = render_yaml(&inputs, common::fixed_now())
            .unwrap_or_else(|e| panic!("example {name} does not render: {e}"));
        assert!(
            warnings.is_empty(),
            "example {name} has warnings: {warnings:?}"
        );
        insta::assert_snapshot!(name.as_str(), yaml);
    }
}

#[test]
fn every_example_validates_without_problems() {
    for name in common::example_names() {
        let inputs = common::load_example(&name);
        let report = quay_operator::cli::validate_report(&inputs, common::fixed_now());
        assert!(
            report.problems.is_empty(),
            "example {name}: {:#?}",
            report.problems
        );
    }
}
