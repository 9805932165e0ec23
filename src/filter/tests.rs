use super::*;
use proptest::prelude::*;

fn m(expr: &str, props: &[(&str, &str)]) -> bool {
    let e = parse(expr).unwrap_or_else(|err| panic!("{expr}: {err}"));
    e.matches(|k| props.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
}

#[test]
fn comparisons_and_logic() {
    let p = [
        ("a", "10"),
        ("b", "abc"),
        ("c", "true"),
        ("TAGS", "TagA"),
        ("f", "2.5"),
    ];
    assert!(m("a > 5 AND b = 'abc'", &p));
    assert!(!m("a > 10", &p));
    assert!(m("a >= 10 and a <= 10 and a = 10 and a <> 11", &p));
    assert!(m("f < 3 and f > 2.4", &p));
    assert!(m("b <> 'x' OR a < 0", &p));
    assert!(m("NOT (a < 5)", &p));
    assert!(m("c = TRUE", &p));
    assert!(m("TRUE", &p));
    assert!(!m("FALSE", &p));
    assert!(m("TAGS IN ('TagA', 'TagB')", &p));
    assert!(m("TAGS NOT IN ('TagB')", &p));
    assert!(m("a BETWEEN 1 AND 10", &p));
    assert!(!m("a NOT BETWEEN 1 AND 10", &p));
    assert!(m("a between -5 and 10.5", &p));
    assert!(m("zz IS NULL and a IS NOT NULL", &p));
    assert!(m(
        "b CONTAINS 'bc' and b STARTSWITH 'ab' and b ENDSWITH 'c'",
        &p
    ));
    assert!(m("(a > 100 OR b = 'abc') AND (TAGS = 'TagA')", &p));
    assert!(m("b = 'it''s' OR TRUE", &p));
}

#[test]
fn missing_properties_are_unknown() {
    assert!(!m("x > 1", &[]));
    assert!(!m("NOT (x > 1)", &[]));
    assert!(m("x > 1 OR TRUE", &[]));
    assert!(!m("x > 1 AND TRUE", &[]));
    assert!(!m("x IN ('a')", &[]));
    assert!(!m("x NOT IN ('a')", &[]));
    // A non-numeric value never compares with a number.
    assert!(!m("x > 1", &[("x", "abc")]));
    assert!(!m("x <= 1", &[("x", "abc")]));
}

#[test]
fn malformed_expressions_are_rejected() {
    for bad in [
        "",
        "a >",
        "a > 5 AND",
        "(a > 5",
        "a > 5)",
        "a",
        "'x'",
        "a IN ()",
        "a IN (1, 2)",
        "a BETWEEN 1",
        "a IS 5",
        "a = 'unterminated",
        "a # 1",
        "a > 5 b < 3",
        "NOT a",
        "a NOT 5",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
    let deep = format!("{}a = 1{}", "(".repeat(500), ")".repeat(500));
    assert!(parse(&deep).is_err());
    let nots = format!("{}a = 1", "NOT ".repeat(500));
    assert!(parse(&nots).is_err());
}

proptest! {
    #[test]
    fn random_input_never_panics(s in ".{0,80}") {
        if let Ok(e) = parse(&s) {
            let _ = e.matches(|_| Some("1"));
        }
    }

    #[test]
    fn random_tokens_never_panic(parts in proptest::collection::vec(
        prop_oneof![
            Just("a"), Just("TAGS"), Just("("), Just(")"), Just("AND"), Just("OR"), Just("NOT"),
            Just("IN"), Just("BETWEEN"), Just("IS"), Just("NULL"), Just("="), Just("<>"), Just(">"),
            Just(">="), Just("'x'"), Just("5"), Just("-2.5"), Just(","), Just("TRUE"), Just("CONTAINS"),
        ], 0..24)) {
        let s = parts.join(" ");
        if let Ok(e) = parse(&s) {
            let _ = e.matches(|k| (k == "a").then_some("5"));
        }
    }
}
