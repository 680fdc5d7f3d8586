//! Scenes: what a shapes-world image shows, sampled from a seeded random stream.
//!
//! A scene holds one to three objects at distinct positions. Objects that share a colour
//! and a shape form a *group* and always share a size, so "two small red circles" is true
//! of every member. Groups differ in (colour, shape).

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;

use super::vocab::{
    is_held_out, rgb_distance, Colour, Position, Shape, Size, BACKGROUNDS, MAX_COUNT,
};
use super::Split;

/// Which scenes a world draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// One to three groups, one to three objects in all (the training distribution).
    Mixed,
    /// One group of one to three identical objects: colour, shape, size and count are
    /// each a single, well-defined answer (used to evaluate colour, shape and count).
    SingleGroup,
    /// One object: its position is a single answer too (used to evaluate position).
    SingleObject,
}

impl Layout {
    /// Every layout.
    pub const ALL: [Layout; 3] = [Layout::Mixed, Layout::SingleGroup, Layout::SingleObject];

    /// The layout's name on the command line (`mixed`, `single-group`, `single-object`).
    pub fn name(self) -> &'static str {
        match self {
            Layout::Mixed => "mixed",
            Layout::SingleGroup => "single-group",
            Layout::SingleObject => "single-object",
        }
    }

    /// Looks a layout up by name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// One drawn object.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Its outline.
    pub shape: Shape,
    /// Its named colour.
    pub colour: Colour,
    /// Its size class.
    pub size: Size,
    /// Its named position.
    pub position: Position,
    /// Where its centre is drawn, (x, y) as fractions of the image side (y down): the
    /// position's anchor plus a small jitter.
    pub centre: (f32, f32),
    /// Rotation in degrees (0 for circles, within ±15 otherwise).
    pub angle: f32,
    /// The fill actually used: the colour's nominal value jittered by a few levels.
    pub rgb: [u8; 3],
}

/// Objects that share a colour and a shape: what one noun phrase of a caption describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// The members' shape.
    pub shape: Shape,
    /// The members' colour.
    pub colour: Colour,
    /// The members' size (always shared within a group).
    pub size: Size,
    /// How many members (1 to 3).
    pub count: usize,
    /// The member's position when the group has one member; `None` otherwise.
    pub position: Option<Position>,
}

/// What one image shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// The flat background colour (muted; never close to an object colour).
    pub background: [u8; 3],
    /// The objects, in drawing order (they never overlap).
    pub objects: Vec<Object>,
}

impl Scene {
    /// The scene's groups, in the order their first member appears in `objects`.
    pub fn groups(&self) -> Vec<Group> {
        let mut groups: Vec<Group> = Vec::new();
        for o in &self.objects {
            match groups
                .iter_mut()
                .find(|g| g.colour == o.colour && g.shape == o.shape)
            {
                Some(g) => {
                    g.count += 1;
                    g.position = None;
                }
                None => groups.push(Group {
                    shape: o.shape,
                    colour: o.colour,
                    size: o.size,
                    count: 1,
                    position: Some(o.position),
                }),
            }
        }
        groups
    }
}

/// Jitter of an object's centre around its anchor, as a fraction of the image side. With
/// the anchors and radii in `vocab`, two large objects at neighbouring anchors still do
/// not touch.
const CENTRE_JITTER: f32 = 0.025;
/// Largest rotation of a non-circular shape, in degrees.
const MAX_ANGLE: f32 = 15.0;
/// Largest change of one colour channel of an object.
const OBJECT_JITTER: i16 = 10;
/// Largest change of one colour channel of the background.
const BACKGROUND_JITTER: i16 = 6;

/// A drawn scene and its *focus*: the (colour, shape) of the group drawn first, which is a
/// uniformly drawn group of a lone scene and the varied group of a family member (`None`
/// only for a scene without groups).
pub(crate) struct Drawn {
    /// What the image shows.
    pub scene: Scene,
    /// The group a one-group caption names.
    pub focus: Option<(Colour, Shape)>,
}

/// Draws a scene for `split` and `layout` from `rng`.
pub(crate) fn sample_scene(rng: &mut impl Rng, split: Split, layout: Layout) -> Drawn {
    let counts = group_counts(rng, layout);
    let combos = combinations(split);
    let chosen: Vec<(Colour, Shape)> = combos.choose_multiple(rng, counts.len()).copied().collect();
    Drawn {
        scene: arrange(rng, &counts, &chosen),
        focus: chosen.first().copied(),
    }
}

/// Draws member `member` of a family of `size` scenes that share one layout and vary the
/// first group's colour and shape on a grid.
///
/// `family` draws everything the members share: group counts, sizes, positions, placement
/// jitter, rotations, background and the other groups' colours (each member replays the
/// same `family` stream). The first group's (colour, shape) runs over a grid of two colours
/// × ⌈size/2⌉ shapes whose every pair `split` allows: members 0 and 1 differ in colour only,
/// members 0 and 2 in shape only, so telling them apart takes both attributes, bound to
/// the right object. Other groups' shapes come from `own`, keeping the groups of a scene
/// distinct (colour, shape) pairs. Where no such grid exists (the Unseen split), every
/// member keeps the first group's drawn pair. The focus is the first group.
pub(crate) fn sample_family_member(
    family: &mut impl Rng,
    own: &mut impl Rng,
    member: usize,
    size: usize,
    split: Split,
    layout: Layout,
) -> Drawn {
    let counts = group_counts(family, layout);
    let combos = combinations(split);
    let mut chosen: Vec<(Colour, Shape)> = combos
        .choose_multiple(family, counts.len())
        .copied()
        .collect();
    if let (Some(first), Some(pair)) =
        (chosen.first_mut(), grid_pair(family, &combos, member, size))
    {
        *first = pair;
    }
    for g in 1..chosen.len() {
        let colour = chosen[g].0;
        let free: Vec<Shape> = Shape::ALL
            .iter()
            .copied()
            .filter(|&s| combos.contains(&(colour, s)) && !chosen[..g].contains(&(colour, s)))
            .collect();
        if let Some(&shape) = free.choose(own) {
            chosen[g].1 = shape;
        }
    }
    Drawn {
        scene: arrange(family, &counts, &chosen),
        focus: chosen.first().copied(),
    }
}

/// Member `member`'s cell of a grid of two colours × ⌈size/2⌉ shapes drawn from `rng`, every
/// pair of which is in `combos`; `None` when `combos` holds no such grid.
fn grid_pair(
    rng: &mut impl Rng,
    combos: &[(Colour, Shape)],
    member: usize,
    size: usize,
) -> Option<(Colour, Shape)> {
    let colours: Vec<Colour> = Colour::ALL.choose_multiple(rng, 2).copied().collect();
    let mut shapes: Vec<Shape> = Shape::ALL
        .iter()
        .copied()
        .filter(|&s| colours.iter().all(|&c| combos.contains(&(c, s))))
        .collect();
    shapes.shuffle(rng);
    let columns = size.div_ceil(2);
    if colours.len() < 2 || shapes.len() < columns {
        return None;
    }
    Some((colours[member % 2], shapes[(member / 2) % columns]))
}

/// Places groups of `counts[i]` objects of `chosen[i]` at distinct positions, on a
/// background, all drawn from `rng`.
fn arrange(rng: &mut impl Rng, counts: &[usize], chosen: &[(Colour, Shape)]) -> Scene {
    let mut positions = Position::ALL.to_vec();
    positions.shuffle(rng);
    let mut positions = positions.into_iter();
    let mut objects = Vec::new();
    for (&count, &(colour, shape)) in counts.iter().zip(chosen) {
        let size = *Size::ALL.choose(rng).unwrap_or(&Size::Small);
        for position in positions.by_ref().take(count) {
            objects.push(place(rng, shape, colour, size, position));
        }
    }
    // Interleave groups in drawing order so object order says nothing about grouping.
    objects.shuffle(rng);
    let background = *BACKGROUNDS.choose(rng).unwrap_or(&BACKGROUNDS[0]);
    Scene {
        background: jitter(rng, background, BACKGROUND_JITTER),
        objects,
    }
}

/// The members of each group, e.g. `[2, 1]`: two groups, three objects.
fn group_counts(rng: &mut impl Rng, layout: Layout) -> Vec<usize> {
    match layout {
        Layout::SingleObject => vec![1],
        Layout::SingleGroup => vec![rng.random_range(1..=MAX_COUNT)],
        Layout::Mixed => match rng.random_range(1..=3) {
            1 => vec![rng.random_range(1..=MAX_COUNT)],
            2 => {
                if rng.random_bool(0.5) {
                    vec![1, 1]
                } else {
                    vec![2, 1]
                }
            }
            _ => vec![1, 1, 1],
        },
    }
}

/// The (colour, shape) combinations a split draws from.
pub(crate) fn combinations(split: Split) -> Vec<(Colour, Shape)> {
    let unseen = split == Split::Unseen;
    Colour::ALL
        .iter()
        .flat_map(|&c| Shape::ALL.iter().map(move |&s| (c, s)))
        .filter(|&(c, s)| is_held_out(c, s) == unseen)
        .collect()
}

fn place(
    rng: &mut impl Rng,
    shape: Shape,
    colour: Colour,
    size: Size,
    position: Position,
) -> Object {
    let (ax, ay) = position.anchor();
    // Drawn for every shape, so the stream does not depend on which shape is placed.
    let turn = rng.random_range(-MAX_ANGLE..=MAX_ANGLE);
    let angle = if shape == Shape::Circle { 0.0 } else { turn };
    Object {
        shape,
        colour,
        size,
        position,
        centre: (
            ax + rng.random_range(-CENTRE_JITTER..=CENTRE_JITTER),
            ay + rng.random_range(-CENTRE_JITTER..=CENTRE_JITTER),
        ),
        angle,
        rgb: jitter(rng, colour.rgb(), OBJECT_JITTER),
    }
}

/// Draws per object before a spread gives up and keeps the object's usual fill.
const SPREAD_TRIES: usize = 16;
/// Least distance of a spread fill from the background (Euclidean, sRGB levels): the
/// dimmest nominal colour, green on the olive background, sits at 98.
const MIN_CONTRAST: f32 = 80.0;

/// Redraws every object's fill within ±`spread` levels per channel of its colour's
/// nominal value, keeping the first draw still nearest that nominal value among all
/// colours and at least [`MIN_CONTRAST`] from the background; an object with no such draw
/// in [`SPREAD_TRIES`] keeps its fill. The named colour of each object, and so every
/// caption, stays true.
pub(crate) fn spread_colours(scene: &mut Scene, spread: u8, rng: &mut impl Rng) {
    let background = scene.background;
    let spread = i16::from(spread);
    for object in &mut scene.objects {
        let fits = |rgb: [u8; 3]| {
            Colour::nearest(rgb).0 == object.colour && rgb_distance(rgb, background) >= MIN_CONTRAST
        };
        if let Some(rgb) = (0..SPREAD_TRIES)
            .map(|_| jitter(rng, object.colour.rgb(), spread))
            .find(|&rgb| fits(rgb))
        {
            object.rgb = rgb;
        }
    }
}

fn jitter(rng: &mut impl Rng, rgb: [u8; 3], amount: i16) -> [u8; 3] {
    rgb.map(|c| (i16::from(c) + rng.random_range(-amount..=amount)).clamp(0, 255) as u8)
}

/// The binding swap of `drawn`: its focus group (c₀, s₀) and the next group (c₁, s₁) trade
/// shapes, becoming (c₀, s₁) and (c₁, s₀), everything else kept. The two scenes hold the
/// same colours and shapes at the same places and differ only in which colour goes with
/// which shape: the hard negative that teaches binding. `None` when the swap would not
/// change the pairs or would leave `split`'s combinations or collide with a third group.
pub(crate) fn swap_shapes(drawn: Drawn, split: Split) -> Option<Drawn> {
    let (c0, s0) = drawn.focus?;
    let groups = drawn.scene.groups();
    let other = groups.iter().find(|g| (g.colour, g.shape) != (c0, s0))?;
    let (c1, s1) = (other.colour, other.shape);
    let combos = combinations(split);
    let allowed = |pair: (Colour, Shape)| {
        combos.contains(&pair) && !groups.iter().any(|g| (g.colour, g.shape) == pair)
    };
    if c0 == c1 || s0 == s1 || !allowed((c0, s1)) || !allowed((c1, s0)) {
        return None;
    }
    let mut scene = drawn.scene;
    for o in &mut scene.objects {
        let new_shape = match (o.colour, o.shape) {
            pair if pair == (c0, s0) => s1,
            pair if pair == (c1, s1) => s0,
            _ => continue,
        };
        o.shape = new_shape;
        if new_shape == Shape::Circle {
            o.angle = 0.0;
        }
    }
    Some(Drawn {
        scene,
        focus: Some((c0, s1)),
    })
}
