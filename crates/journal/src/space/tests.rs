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
            author: "sam".into(),
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
                author: author.into(),
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
fn a_partner_may_add_comments_in_their_own_name_and_nothing_else() {
    let e = private_entry();
    let mut owner = Space::create(&[1; 16], [9; 16]).expect("create");
    owner
        .put(&SharedEntry::project(
            &e,
            &parse_fields("lesson,next").expect("f"),
            t(3_000),
        ))
        .expect("put");
    owner
        .comment(&Comment {
            id: IterationId::from_parts(4_000, 4),
            entry: e.id,
            author: "me".into(),
            at: t(4_000),
            text: "first".into(),
        })
        .expect("comment");
    let mut base = owner.into_doc();
    let before = Space::from_doc(base.fork()).expect("space");
    let mut edit = |f: &dyn Fn(&mut Space)| {
        let mut s =
            Space::from_doc(base.fork().with_actor([2; 16].as_slice().into())).expect("space");
        f(&mut s);
        s
    };
    let comment = |author: &str, entry: EntryId| Comment {
        id: IterationId::from_parts(6_000, 6),
        entry,
        author: author.into(),
        at: t(6_000),
        text: "hi".into(),
    };

    let ok = edit(&|s| s.comment(&comment("sam", e.id)).expect("comment"));
    assert_eq!(check_partner_changes(&before, &ok, "sam"), Ok(()));

    let forged = edit(&|s| s.comment(&comment("me", e.id)).expect("comment"));
    assert!(matches!(
        check_partner_changes(&before, &forged, "sam"),
        Err(Violation::CommentForged(_))
    ));

    let rewritten = edit(&|s| {
        let mut changed = s.entry(e.id).expect("read").expect("there");
        changed.lesson = Some("the partner's words".into());
        s.put(&changed).expect("put");
    });
    assert!(matches!(
        check_partner_changes(&before, &rewritten, "sam"),
        Err(Violation::EntryChanged(_))
    ));

    let unshared = edit(&|s| {
        s.remove(e.id).expect("remove");
    });
    assert!(check_partner_changes(&before, &unshared, "sam").is_err());

    let renamed = edit(&|s| {
        s.doc.put(ROOT, "failup", "space/2").expect("put");
    });
    assert_eq!(
        check_partner_changes(&before, &renamed, "sam"),
        Err(Violation::SpaceChanged)
    );
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
        author: "sam".into(),
        at: t(1),
        text: "hello".into(),
    };
    assert!(space.comment(&c).is_err(), "not shared");
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
