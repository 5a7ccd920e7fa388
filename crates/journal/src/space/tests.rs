use super::*;
use crate::entry::{Iteration, NewEntry};

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).expect("valid")
}

fn private_entry() -> Entry {
    let new = NewEntry {
        text: "PRIVATE-MARKER-7731 the whole embarrassing story".into(),
        lesson: Some("ask for help earlier".into()),
        next: Some("book a weekly review".into()),
        feeling: Some(4),
        tags: vec!["work".to_owned()],
        ..NewEntry::default()
    };
    let mut e = new
        .into_entry(
            EntryId::from_parts(1_000, 1),
            t(1_000),
            Date::constant(2026, 11, 2),
        )
        .expect("entry");
    e.iterations.push(Iteration {
        id: IterationId::from_parts(2_000, 2),
        at: t(2_000),
        tried: "PRIVATE-MARKER-7731 tried something".into(),
        outcome: None,
    });
    e
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn only_the_chosen_fields_enter_the_space_document() {
    let e = private_entry();
    let only = parse_fields("lesson, next").expect("fields");
    let shared = SharedEntry::project(&e, &only, t(3_000));
    assert_eq!(shared.text, None);
    assert_eq!(shared.feeling, None);
    assert_eq!(shared.tags, None);
    assert_eq!(shared.iterations, None);
    assert_eq!(shared.lesson.as_deref(), Some("ask for help earlier"));
    let mut space = Space::create(&[1; 16], [9; 16]).expect("create");
    space.put(&shared).expect("put");
    let mut doc = space.into_doc();
    let bytes = doc.save();
    assert!(!contains(&bytes, "PRIVATE-MARKER-7731"));
    assert!(!contains(&bytes, "work"));
    let space = Space::from_doc(AutoCommit::load(&bytes).expect("load")).expect("space");
    assert_eq!(space.entries().expect("entries"), vec![shared]);
}

#[test]
fn narrowing_a_share_removes_fields_and_unsharing_removes_the_entry_and_its_comments() {
    let e = private_entry();
    let mut space = Space::create(&[1; 16], [9; 16]).expect("create");
    let all: BTreeSet<Field> = Field::ALL.into_iter().collect();
    space
        .put(&SharedEntry::project(&e, &all, t(3_000)))
        .expect("put all");
    let full = space.entry(e.id).expect("read").expect("there");
    assert_eq!(full.text.as_deref(), Some(e.text.as_str()));
    assert_eq!(full.iterations, Some(1));
    assert_eq!(full.tags, Some(e.tags.clone()));

    let only = parse_fields("lesson").expect("fields");
    space
        .put(&SharedEntry::project(&e, &only, t(3_000)))
        .expect("narrow");
    let narrow = space.entry(e.id).expect("read").expect("there");
    assert_eq!(narrow.text, None);
    assert_eq!(narrow.lesson.as_deref(), Some("ask for help earlier"));

    space
        .comment(&Comment {
            id: IterationId::from_parts(4_000, 4),
            entry: e.id,
            at: t(4_000),
            text: "proud of you".into(),
        })
        .expect("comment");
    assert_eq!(space.comments().expect("comments").len(), 1);
    assert!(space.remove(e.id).expect("remove"));
    assert!(!space.remove(e.id).expect("again"));
    assert!(space.entries().expect("entries").is_empty());
    assert!(space.comments().expect("comments").is_empty());
}

#[test]
fn comments_written_at_once_on_both_sides_are_all_kept() {
    let e = private_entry();
    let mut owner = Space::create(&[1; 16], [9; 16]).expect("create");
    owner
        .put(&SharedEntry::project(
            &e,
            &parse_fields("lesson").expect("f"),
            t(3_000),
        ))
        .expect("put");
    let mut owner_doc = owner.into_doc();
    let mut partner_doc = owner_doc.fork().with_actor([2; 16].as_slice().into());
    let mut owner = Space::from_doc(owner_doc.fork()).expect("space");
    let mut partner = Space::from_doc(partner_doc.fork()).expect("space");
    for (space, author, n) in [(&mut owner, "me", 5), (&mut partner, "sam", 6)] {
        space
            .comment(&Comment {
                id: IterationId::from_parts(5_000, n),
                entry: e.id,
                at: t(5_000),
                text: format!("from {author}"),
            })
            .expect("comment");
    }
    owner_doc = owner.into_doc();
    partner_doc = partner.into_doc();
    owner_doc.merge(&mut partner_doc).expect("merge");
    partner_doc.merge(&mut owner_doc).expect("merge");
    let a = Space::from_doc(owner_doc).expect("space");
    let b = Space::from_doc(partner_doc).expect("space");
    assert_eq!(a.comments().expect("c").len(), 2);
    assert_eq!(a.comments().expect("c"), b.comments().expect("c"));
}

#[test]
fn devices_are_listed_and_replaced_whole() {
    let mut space = Space::create(&[1; 16], [9; 16]).expect("create");
    assert!(space.devices().expect("devices").is_empty());
    let mut list = std::collections::BTreeMap::new();
    list.insert(
        "A".to_owned(),
        vec!["127.0.0.1:1".to_owned(), "10.0.0.1:2".to_owned()],
    );
    list.insert("B".to_owned(), vec![]);
    assert!(space.set_devices(&list).expect("set"));
    assert!(
        !space.set_devices(&list).expect("same"),
        "no change, no write"
    );
    assert_eq!(space.devices().expect("devices"), list);
    list.remove("A");
    assert!(space.set_devices(&list).expect("set"));
    assert_eq!(space.devices().expect("devices"), list);
}

#[test]
fn bad_field_lists_and_comments_are_refused() {
    assert!(parse_fields("").is_err());
    assert!(parse_fields(" , ").is_err());
    let err = parse_fields("lesson,diary").expect_err("unknown");
    assert!(err.to_string().contains("diary"));
    assert_eq!(
        parse_fields("story").expect("alias"),
        [Field::Text].into_iter().collect()
    );
    let mut space = Space::create(&[1; 16], [9; 16]).expect("create");
    let c = Comment {
        id: IterationId::from_parts(1, 1),
        entry: EntryId::from_parts(1, 1),
        at: t(1),
        text: "hello".into(),
    };
    space
        .put(&SharedEntry::project(
            &private_entry(),
            &parse_fields("lesson").expect("f"),
            t(1),
        ))
        .expect("put");
    let empty = Comment {
        text: "  ".into(),
        entry: private_entry().id,
        ..c
    };
    assert!(space.comment(&empty).is_err());
}

#[test]
fn a_comment_written_here_refuses_control_characters_but_one_read_is_kept_as_written() {
    let mut space = Space::create(&[1; 16], [9; 16]).expect("create");
    let entry = private_entry().id;
    let c = |id: u128, text: &str| Comment {
        id: IterationId::from_parts(1, id),
        entry,
        at: t(1),
        text: text.into(),
    };
    let err = space
        .comment(&c(1, "nice \u{1b}]0;pwned\u{7}"))
        .expect_err("refused");
    assert!(
        err.to_string()
            .starts_with("the comment contains a control character (U+001B) at position 6"),
        "{err}"
    );
    space
        .comment(&c(2, "well done\n\tkeep going"))
        .expect("lines and tabs");
    // A partner's client may write anything into its own side: reading never refuses it (the
    // commands escape it when they show it).
    let mut doc = space.into_doc();
    let comments = map_at(&doc, &ROOT, "comments").expect("read").expect("map");
    let (_, obj) = doc
        .get(
            &comments,
            IterationId::from_parts(1, 2).to_string().as_str(),
        )
        .expect("read")
        .expect("comment");
    doc.put(&obj, "text", "\u{9b}2J\u{202e}").expect("put");
    let space = Space::from_doc(doc).expect("space");
    assert_eq!(
        space.comments().expect("comments")[0].text,
        "\u{9b}2J\u{202e}"
    );
}
