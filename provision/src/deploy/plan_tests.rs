use super::*;

fn want(name: &str, has_data: bool, running: bool, stale: bool) -> Wanted {
    Wanted {
        name: name.into(),
        peer_url: format!("https://{name}:2380"),
        has_data,
        running,
        stale,
    }
}

fn member(id: u64, name: &str, healthy: bool) -> Member {
    Member {
        id,
        name: name.into(),
        peer_urls: vec![format!("https://{name}:2380")],
        is_learner: false,
        healthy,
    }
}

fn cluster(members: Vec<Member>, leader: u64) -> Observed {
    Observed {
        members: Some(members),
        leader: Some(leader),
    }
}

fn three(healthy: [bool; 3]) -> Vec<Member> {
    vec![
        member(1, "a", healthy[0]),
        member(2, "b", healthy[1]),
        member(3, "c", healthy[2]),
    ]
}

#[test]
fn fresh_hosts_bootstrap_together() {
    let w = vec![
        want("a", false, false, false),
        want("b", false, false, false),
    ];
    assert_eq!(
        plan(&w, &Observed::default()),
        Ok(vec![Step::Bootstrap(vec!["a".into(), "b".into()])])
    );
}

#[test]
fn an_unchanged_running_cluster_needs_nothing() {
    let w = vec![
        want("a", true, true, false),
        want("b", true, true, false),
        want("c", true, true, false),
    ];
    assert_eq!(plan(&w, &cluster(three([true; 3]), 1)), Ok(vec![]));
}

#[test]
fn stopped_members_are_started_before_anything_else() {
    let w = vec![
        want("a", true, false, false),
        want("b", true, false, false),
        want("c", false, false, false),
    ];
    assert_eq!(
        plan(&w, &Observed::default()),
        Ok(vec![Step::Start("a".into()), Step::Start("b".into())])
    );
}

#[test]
fn a_new_node_is_added_and_a_missing_one_removed_after_it() {
    let w = vec![
        want("a", true, true, false),
        want("b", true, true, false),
        want("d", false, false, false),
    ];
    assert_eq!(
        plan(&w, &cluster(three([true; 3]), 1)),
        Ok(vec![
            Step::Add {
                name: "d".into(),
                stale_data: false
            },
            Step::Remove {
                name: "c".into(),
                id: 3
            },
        ])
    );
}

#[test]
fn a_host_that_lost_its_data_is_replaced_never_restarted_as_new() {
    let w = vec![
        want("a", true, true, false),
        want("b", true, true, false),
        want("c", false, false, false),
    ];
    assert_eq!(
        plan(&w, &cluster(three([true, true, false]), 1)),
        Ok(vec![Step::Replace {
            name: "c".into(),
            id: 3
        }])
    );
}

#[test]
fn rolling_restart_puts_the_leader_last() {
    let w = vec![
        want("a", true, true, true),
        want("b", true, true, true),
        want("c", true, true, true),
    ];
    assert_eq!(
        plan(&w, &cluster(three([true; 3]), 1)),
        Ok(vec![
            Step::Restart {
                name: "b".into(),
                leader: false
            },
            Step::Restart {
                name: "c".into(),
                leader: false
            },
            Step::Restart {
                name: "a".into(),
                leader: true
            },
        ])
    );
}

#[test]
fn restart_is_refused_when_one_member_is_already_down() {
    let w = vec![
        want("a", true, true, true),
        want("b", true, true, false),
        want("c", true, true, false),
    ];
    let e = plan(&w, &cluster(three([true, true, false]), 1)).unwrap_err();
    assert!(e.0.contains("would lose quorum"), "{e}");
}

#[test]
fn removal_that_loses_quorum_is_refused() {
    // c is healthy but a is down: removing c leaves 1 healthy of 2 voters (quorum 2).
    let w = vec![want("a", true, true, false), want("b", true, true, false)];
    let e = plan(&w, &cluster(three([false, true, true]), 2)).unwrap_err();
    assert!(e.0.contains("removing c would lose quorum"), "{e}");
}

#[test]
fn removing_every_member_is_refused() {
    let e = plan(&[], &cluster(vec![member(1, "a", true)], 1)).unwrap_err();
    assert!(e.0.contains("provision reset"), "{e}");
}

#[test]
fn an_added_member_that_never_started_joins() {
    let mut ms = three([true; 3]);
    ms.push(Member {
        id: 9,
        name: String::new(),
        peer_urls: vec!["https://d:2380".into()],
        is_learner: true,
        healthy: false,
    });
    let w = vec![
        want("a", true, true, false),
        want("b", true, true, false),
        want("c", true, true, false),
        want("d", false, false, false),
    ];
    assert_eq!(plan(&w, &cluster(ms, 1)), Ok(vec![Step::Join("d".into())]));
}

#[test]
fn old_data_of_a_non_member_is_moved_aside_on_add() {
    let w = vec![
        want("a", true, true, false),
        want("b", true, true, false),
        want("c", true, true, false),
        want("d", true, false, false),
    ];
    // d has data but is not a member: it is not started (it would rejoin with a dead identity), it is added.
    assert_eq!(
        plan(&w, &cluster(three([true; 3]), 1)),
        Ok(vec![Step::Add {
            name: "d".into(),
            stale_data: true
        }])
    );
}
