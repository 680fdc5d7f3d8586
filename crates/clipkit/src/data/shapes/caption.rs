//! The captions grammar. Every phrasing it produces is true of its scene:
//!
//! ```text
//! caption     = prefix? body
//! prefix      = "a photo of " | "an image of " | "a picture of " | "there is " | "there are "
//! body        = phrase | phrase " and " phrase | phrase ", " phrase " and " phrase
//! phrase      = one-object | several
//! one-object  = ("a" | "an" | "one") size? colour shape position?
//! several     = ("two" | "three") size? colour shapes
//! position    = "on the left" | "on the right" | "at the top" | "at the bottom" | "in the centre"
//! ```
//!
//! A caption names every group of the scene once; a *one-group* caption
//! ([`one_group_captions`]) names a single group of a scene that has several, the way alt
//! text names the main subject and leaves the rest out. Within one caption either every
//! phrase carries its size or none does, and likewise its position (which only one-object
//! phrases can carry, since the members of a group sit in different places). "there is"
//! or "there are" agrees with the first phrase; "one" appears only in a caption of a
//! single one-object phrase that is the whole scene. An *attribute* caption
//! ([`attribute_captions`]) names one attribute of a group, its colour ("a red shape") or
//! its shape ("two stars"), counting every object of the scene that has it.

use super::claim::Claim;
use super::scene::{Group, Scene};
use super::vocab::COUNT_WORDS;

/// How much a noun phrase says beyond count, colour and shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Detail {
    size: bool,
    position: bool,
}

const DETAILS: [Detail; 4] = [
    Detail {
        size: false,
        position: false,
    },
    Detail {
        size: true,
        position: false,
    },
    Detail {
        size: false,
        position: true,
    },
    Detail {
        size: true,
        position: true,
    },
];

/// Prefixes that work with any body (besides "there is" / "there are", which must agree
/// with it).
pub const PREFIXES: [&str; 4] = ["", "a photo of ", "an image of ", "a picture of "];

/// Every phrasing of the scene, without duplicates; the first is the plainest.
pub fn captions(scene: &Scene) -> Vec<String> {
    let groups = scene.groups();
    let mut orders = vec![groups.clone()];
    if groups.len() > 1 {
        orders.push(groups.iter().rev().copied().collect());
    }
    let mut out = phrasings(&orders);
    if let [g] = groups[..] {
        if g.count == 1 {
            for detail in DETAILS {
                let rest = descriptor(&g, detail);
                push_new(&mut out, format!("one {rest}"));
                push_new(&mut out, format!("a photo of one {rest}"));
            }
        }
    }
    out
}

/// Every phrasing that names `group` alone ("a red circle", "there are two small red
/// circles"): true of a scene holding the group, whatever else it shows.
pub fn one_group_captions(group: &Group) -> Vec<String> {
    phrasings(&[vec![*group]])
}

/// Every phrasing that names one attribute of `group` alone, the colour ("a red shape",
/// "there are two red shapes") or the shape ("a star", "a photo of two stars"), counted
/// over every object of `scene` that has it: true of the scene, and what teaches a model
/// colours and shapes as separate words it can put together.
pub fn attribute_captions(scene: &Scene, group: &Group) -> Vec<String> {
    attribute_phrasings(scene, group)
        .into_iter()
        .flat_map(|(_, phrasings)| phrasings)
        .collect()
}

/// [`attribute_captions`] by what they claim: the colour captions with their [`Claim`],
/// then the shape captions with theirs (the two never share a phrasing).
pub fn attribute_phrasings(scene: &Scene, group: &Group) -> [(Claim, Vec<String>); 2] {
    let colour = Claim::colour(scene, group.colour);
    let shape = Claim::shape(scene, group.shape);
    let (colours, shapes) = (colour.count(), shape.count());
    let colour_noun = if colours == 1 {
        format!("{} shape", group.colour.name())
    } else {
        format!("{} shapes", group.colour.name())
    };
    let shape_noun = if shapes == 1 {
        group.shape.name()
    } else {
        group.shape.plural()
    };
    let phrasings = |count: usize, rest: &str| {
        let body = counted(count, rest);
        let mut out = Vec::new();
        for prefix in PREFIXES {
            push_new(&mut out, format!("{prefix}{body}"));
        }
        let verb = if count == 1 { "is" } else { "are" };
        push_new(&mut out, format!("there {verb} {body}"));
        out
    };
    [
        (colour, phrasings(colours, &colour_noun)),
        (shape, phrasings(shapes, shape_noun)),
    ]
}

/// "a red shape", "an ...", "two stars": a noun after its count word or article.
fn counted(count: usize, rest: &str) -> String {
    if count <= 1 {
        with_article(rest)
    } else {
        format!(
            "{} {rest}",
            COUNT_WORDS[(count - 1).min(COUNT_WORDS.len() - 1)]
        )
    }
}

/// Each order of groups as one body, under every detail and prefix, without duplicates.
fn phrasings(orders: &[Vec<Group>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for detail in DETAILS {
        for order in orders {
            let Some(first) = order.first() else {
                continue;
            };
            let body = join_phrases(order.iter().map(|g| phrase(g, detail)).collect());
            for prefix in PREFIXES {
                push_new(&mut out, format!("{prefix}{body}"));
            }
            let verb = if first.count == 1 { "is" } else { "are" };
            push_new(&mut out, format!("there {verb} {body}"));
        }
    }
    out
}

/// The one phrasing that identifies what a scene shows up to sizes and positions: plain
/// phrases, groups ordered by (colour, shape), no prefix ("two red circles and a blue
/// star"). Two scenes with the same canonical caption have the same groups and counts.
pub fn canonical_caption(scene: &Scene) -> String {
    let mut groups = scene.groups();
    groups.sort_by_key(|g| (g.colour, g.shape));
    join_phrases(groups.iter().map(|g| phrase(g, DETAILS[0])).collect())
}

/// The noun phrase of one group, with or without its size and position: "a red circle",
/// "a small red circle on the left", "two red circles" (a position is said only for a
/// group of one that has one).
pub fn group_phrase(group: &Group, with_size: bool, with_position: bool) -> String {
    phrase(
        group,
        Detail {
            size: with_size,
            position: with_position,
        },
    )
}

/// "a small red circle on the left", "two red circles".
fn phrase(group: &Group, detail: Detail) -> String {
    let rest = descriptor(group, detail);
    if group.count == 1 {
        with_article(&rest)
    } else {
        format!("{} {rest}", COUNT_WORDS[group.count - 1])
    }
}

/// The phrase after its determiner: "small red circle on the left", "red circles".
fn descriptor(group: &Group, detail: Detail) -> String {
    let mut words: Vec<&str> = Vec::new();
    if detail.size {
        words.push(group.size.name());
    }
    words.push(group.colour.name());
    words.push(if group.count == 1 {
        group.shape.name()
    } else {
        group.shape.plural()
    });
    if let (true, Some(position)) = (detail.position, group.position) {
        words.push(position.phrase());
    }
    words.join(" ")
}

/// "a" or "an" by the first letter of what follows.
pub fn with_article(rest: &str) -> String {
    let vowel = rest
        .chars()
        .next()
        .is_some_and(|c| "aeiou".contains(c.to_ascii_lowercase()));
    if vowel {
        format!("an {rest}")
    } else {
        format!("a {rest}")
    }
}

/// Joins noun phrases as captions do: "x", "x and y", "x, y and z".
pub fn join_phrases(mut phrases: Vec<String>) -> String {
    match phrases.len() {
        0 | 1 => phrases.pop().unwrap_or_default(),
        n => {
            let last = phrases.remove(n - 1);
            format!("{} and {last}", phrases.join(", "))
        }
    }
}

fn push_new(out: &mut Vec<String>, caption: String) {
    if !out.contains(&caption) {
        out.push(caption);
    }
}
