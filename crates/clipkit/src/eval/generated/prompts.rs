//! Prompt files for judging generated images, and the shapes world's own prompt set.
//!
//! A prompt file is JSON Lines, one prompt per line: `{"prompt", "category"}` (DrawBench
//! style), plus, for shapes-world prompts, `"objects": [{"colour", "shape", "count",
//! "position"}]`: the structured truth the procedural checks compare pixels with
//! (`position` is `null` unless the prompt says where a lone object is). Images are
//! matched to prompts by index (the line number from 0).
//!
//! [`shapes_prompts`] builds the shapes-world set from the world's own vocabulary (colours,
//! shapes, held-out pairs, count and position words), so there is one source of truth for
//! both; [`truth_scene`] draws the scene a prompt describes, the perfect answer every
//! check is validated on.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::shapes::{
    group_phrase, held_out_combinations, is_held_out, join_phrases, Colour, Group, Object,
    Position, Scene, Shape, Size, BACKGROUNDS, MAX_COUNT,
};
use crate::error::{Error, Result};

/// One group of identical objects a prompt asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptObject {
    /// Their colour.
    pub colour: Colour,
    /// Their shape.
    pub shape: Shape,
    /// How many (1 to [`MAX_COUNT`]).
    pub count: usize,
    /// Where the lone object sits, when the prompt says so (only with `count` 1).
    pub position: Option<Position>,
}

/// One prompt and what a right image shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenPrompt {
    /// The text given to the generator.
    pub prompt: String,
    /// The DrawBench-style category results are grouped by.
    pub category: String,
    /// The structured truth; empty for a prompt outside the shapes world (then only
    /// CLIPScore is measured).
    pub objects: Vec<PromptObject>,
}

/// Category of single objects run over every colour.
pub const COLOUR: &str = "colour";
/// Category of single objects run over every shape.
pub const SHAPE: &str = "shape";
/// Category of single objects of the colour–shape pairs held out of training.
pub const UNSEEN_PAIR: &str = "unseen_pair";
/// Category of two or three identical objects.
pub const COUNTING: &str = "counting";
/// Category of a single object at a named position.
pub const POSITION: &str = "position";
/// Category of two objects of two colours and two shapes (attribute binding).
pub const BINDING: &str = "binding";
/// Category of three objects of three colours and three shapes.
pub const THREE_OBJECTS: &str = "three_objects";

/// The shapes-world prompt set (51 prompts): every colour (8), every shape (7), every
/// held-out colour–shape pair (8), two and three objects (8), each position (8), two
/// objects of two colours (8) and three of three colours (4). Outside `unseen_pair`, every
/// pair is one the training split shows.
pub fn shapes_prompts() -> Vec<GenPrompt> {
    let colours = Colour::ALL;
    let mut out = Vec::new();
    for (i, &colour) in colours.iter().enumerate() {
        out.push(prompt(
            COLOUR,
            &[one(colour, trained_shape(colour, i, &[]))],
        ));
    }
    for (j, &shape) in Shape::ALL.iter().enumerate() {
        let colour = (0..colours.len())
            .map(|k| colours[(j + 3 + k) % colours.len()])
            .find(|&c| !is_held_out(c, shape))
            .unwrap_or(Colour::Red);
        out.push(prompt(SHAPE, &[one(colour, shape)]));
    }
    for &(colour, shape) in held_out_combinations() {
        out.push(prompt(UNSEEN_PAIR, &[one(colour, shape)]));
    }
    for (k, &colour) in colours.iter().enumerate() {
        let group = PromptObject {
            count: 2 + k % 2,
            ..one(colour, trained_shape(colour, k + 2, &[]))
        };
        out.push(prompt(COUNTING, &[group]));
    }
    for k in 0..8 {
        let colour = colours[(3 * k + 1) % colours.len()];
        let group = PromptObject {
            position: Some(Position::ALL[k % Position::ALL.len()]),
            ..one(colour, trained_shape(colour, 2 * k + 1, &[]))
        };
        out.push(prompt(POSITION, &[group]));
    }
    for k in 0..8 {
        out.push(prompt(BINDING, &distinct_objects(&[k, k + 3], k)));
    }
    for k in 0..4 {
        out.push(prompt(
            THREE_OBJECTS,
            &distinct_objects(&[k, k + 2, k + 5], 2 * k),
        ));
    }
    out
}

/// Single objects of colours `colours[i % 8]`, each of a trained shape not used before.
fn distinct_objects(colour_indices: &[usize], start: usize) -> Vec<PromptObject> {
    let mut objects: Vec<PromptObject> = Vec::new();
    for (n, &i) in colour_indices.iter().enumerate() {
        let colour = Colour::ALL[i % Colour::ALL.len()];
        let used: Vec<Shape> = objects.iter().map(|o| o.shape).collect();
        objects.push(one(colour, trained_shape(colour, start + 3 * n, &used)));
    }
    objects
}

/// The first shape from `Shape::ALL[start % 7]` on that the training split shows in
/// `colour` and that is not in `used`.
fn trained_shape(colour: Colour, start: usize, used: &[Shape]) -> Shape {
    let n = Shape::ALL.len();
    (0..n)
        .map(|k| Shape::ALL[(start + k) % n])
        .find(|&s| !is_held_out(colour, s) && !used.contains(&s))
        .unwrap_or(Shape::Circle)
}

fn one(colour: Colour, shape: Shape) -> PromptObject {
    PromptObject {
        colour,
        shape,
        count: 1,
        position: None,
    }
}

/// The prompt naming `objects` as the captions grammar phrases them.
fn prompt(category: &str, objects: &[PromptObject]) -> GenPrompt {
    let phrases = objects
        .iter()
        .map(|o| group_phrase(&as_group(o), false, true))
        .collect();
    GenPrompt {
        prompt: join_phrases(phrases),
        category: category.to_string(),
        objects: objects.to_vec(),
    }
}

fn as_group(o: &PromptObject) -> Group {
    Group {
        shape: o.shape,
        colour: o.colour,
        size: Size::Large,
        count: o.count,
        position: o.position,
    }
}

/// The scene `objects` describe, drawn plainly: large objects at their anchors, unrotated,
/// in nominal colours, on the first background; objects without a position take free ones
/// in the order centre, left, right, top, bottom. `None` when they need more than the five
/// positions, or one position twice.
pub fn truth_scene(objects: &[PromptObject]) -> Option<Scene> {
    let taken: Vec<Position> = objects.iter().filter_map(|o| o.position).collect();
    let mut free = [
        Position::Centre,
        Position::Left,
        Position::Right,
        Position::Top,
        Position::Bottom,
    ]
    .into_iter()
    .filter(|p| !taken.contains(p));
    let mut placed = Vec::new();
    for o in objects {
        for _ in 0..o.count {
            let position = match o.position {
                Some(p) => p,
                None => free.next()?,
            };
            placed.push(Object {
                shape: o.shape,
                colour: o.colour,
                size: Size::Large,
                position,
                centre: position.anchor(),
                angle: 0.0,
                rgb: o.colour.rgb(),
            });
        }
    }
    let mut seen: Vec<Position> = placed.iter().map(|o| o.position).collect();
    seen.sort();
    seen.dedup();
    (seen.len() == placed.len()).then(|| Scene {
        background: BACKGROUNDS[0],
        objects: placed,
    })
}

/// A prompt file's line.
#[derive(Serialize, Deserialize)]
struct PromptLine {
    prompt: String,
    category: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    objects: Vec<ObjectLine>,
}

#[derive(Serialize, Deserialize)]
struct ObjectLine {
    colour: String,
    shape: String,
    count: usize,
    #[serde(default)]
    position: Option<String>,
}

/// Writes `prompts` to `path` as JSON Lines.
pub fn write_prompts(path: &Path, prompts: &[GenPrompt]) -> Result<()> {
    let io = |e: std::io::Error| Error::io(path, e);
    let mut out = BufWriter::new(File::create(path).map_err(io)?);
    for p in prompts {
        let line = PromptLine {
            prompt: p.prompt.clone(),
            category: p.category.clone(),
            objects: p
                .objects
                .iter()
                .map(|o| ObjectLine {
                    colour: o.colour.name().to_string(),
                    shape: o.shape.name().to_string(),
                    count: o.count,
                    position: o.position.map(|p| p.name().to_string()),
                })
                .collect(),
        };
        let text = serde_json::to_string(&line).map_err(|e| io(e.into()))?;
        writeln!(out, "{text}").map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Reads a prompt file; errors name the file and line. Blank lines are skipped but still
/// counted, so indices are the order of the prompts, not of the lines.
pub fn read_prompts(path: &Path) -> Result<Vec<GenPrompt>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut prompts = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| Error::Data {
            path: path.to_path_buf(),
            message: format!("line {}: {message}", number + 1),
        };
        let parsed: PromptLine =
            serde_json::from_str(&line).map_err(|e| bad(format!("not a prompt line: {e}")))?;
        if parsed.prompt.trim().is_empty() {
            return Err(bad("empty prompt".into()));
        }
        let objects = parsed
            .objects
            .iter()
            .map(|o| parse_object(o).map_err(&bad))
            .collect::<Result<Vec<_>>>()?;
        prompts.push(GenPrompt {
            prompt: parsed.prompt,
            category: parsed.category,
            objects,
        });
    }
    if prompts.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            message: "no prompts".into(),
        });
    }
    Ok(prompts)
}

fn parse_object(o: &ObjectLine) -> std::result::Result<PromptObject, String> {
    let colour = Colour::from_name(&o.colour).ok_or_else(|| {
        format!(
            "unknown colour {:?} (the shapes world has {})",
            o.colour,
            names(Colour::ALL)
        )
    })?;
    let shape = Shape::from_name(&o.shape).ok_or_else(|| {
        format!(
            "unknown shape {:?} (the shapes world has {})",
            o.shape,
            names(Shape::ALL)
        )
    })?;
    if !(1..=MAX_COUNT).contains(&o.count) {
        return Err(format!("count {} is outside 1..={MAX_COUNT}", o.count));
    }
    let position = match &o.position {
        None => None,
        Some(word) => Some(Position::from_name(word).ok_or_else(|| {
            format!(
                "unknown position {word:?} (the shapes world has {})",
                names(Position::ALL)
            )
        })?),
    };
    if position.is_some() && o.count != 1 {
        return Err("a position is only said of a lone object (count 1)".into());
    }
    Ok(PromptObject {
        colour,
        shape,
        count: o.count,
        position,
    })
}

fn names<T: std::fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
