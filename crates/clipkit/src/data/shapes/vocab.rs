//! The shapes world's vocabulary: shapes, colours, sizes and positions, each with the word
//! captions use for it, and the (colour, shape) combinations held out of training.

use std::fmt;

/// Declares a vocabulary enum with its caption word and the list of all its values.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in a fixed order (the order class indices refer to).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word captions use for this value.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            /// Looks a value up by its caption word.
            pub fn from_name(word: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name() == word)
            }

            /// This value's position in [`Self::ALL`].
            pub fn index(self) -> usize {
                self as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

vocabulary! {
    /// The outline of an object.
    Shape {
        /// A disc.
        Circle => "circle",
        /// An axis-aligned square (rotated by at most a few degrees).
        Square => "square",
        /// An equilateral triangle pointing up.
        Triangle => "triangle",
        /// A five-pointed star.
        Star => "star",
        /// A regular hexagon.
        Hexagon => "hexagon",
        /// A plus-shaped cross.
        Cross => "cross",
        /// A heart.
        Heart => "heart",
    }
}

vocabulary! {
    /// The named fill colour of an object. Backgrounds are muted greys and browns that no
    /// object colour comes close to.
    Colour {
        /// Red.
        Red => "red",
        /// Green.
        Green => "green",
        /// Blue.
        Blue => "blue",
        /// Yellow.
        Yellow => "yellow",
        /// Purple.
        Purple => "purple",
        /// Orange.
        Orange => "orange",
        /// Pink.
        Pink => "pink",
        /// White.
        White => "white",
    }
}

vocabulary! {
    /// How large an object is drawn.
    Size {
        /// Radius 7.5 % of the image side.
        Small => "small",
        /// Radius 13 % of the image side.
        Large => "large",
    }
}

vocabulary! {
    /// Where in the image an object sits: one of five anchors, jittered slightly.
    Position {
        /// Left of centre, vertically centred.
        Left => "left",
        /// Right of centre, vertically centred.
        Right => "right",
        /// Above centre, horizontally centred.
        Top => "top",
        /// Below centre, horizontally centred.
        Bottom => "bottom",
        /// The middle of the image.
        Centre => "centre",
    }
}

impl Shape {
    /// The plural caption word ("crosses", not "crosss").
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Circle => "circles",
            Shape::Square => "squares",
            Shape::Triangle => "triangles",
            Shape::Star => "stars",
            Shape::Hexagon => "hexagons",
            Shape::Cross => "crosses",
            Shape::Heart => "hearts",
        }
    }
}

impl Colour {
    /// The nominal sRGB value; rendering jitters each channel by a few levels.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 30, 35],
            Colour::Green => [40, 175, 60],
            Colour::Blue => [35, 85, 230],
            Colour::Yellow => [245, 220, 40],
            Colour::Purple => [150, 60, 200],
            Colour::Orange => [250, 140, 20],
            Colour::Pink => [255, 130, 200],
            Colour::White => [245, 245, 245],
        }
    }

    /// The colour whose nominal value is nearest `rgb` ([`rgb_distance`]; the first in
    /// [`Colour::ALL`] on a tie), with that distance.
    pub fn nearest(rgb: [u8; 3]) -> (Colour, f32) {
        let mut best = (Colour::Red, f32::INFINITY);
        for &colour in Colour::ALL {
            let distance = rgb_distance(colour.rgb(), rgb);
            if distance < best.1 {
                best = (colour, distance);
            }
        }
        best
    }
}

/// Euclidean distance of two sRGB values, in levels.
pub fn rgb_distance(a: [u8; 3], b: [u8; 3]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(&x, y)| (f32::from(x) - f32::from(y)).powi(2))
        .sum::<f32>()
        .sqrt()
}

impl Size {
    /// The radius of the circle the shape is inscribed in, as a fraction of the image side.
    pub fn radius(self) -> f32 {
        match self {
            Size::Small => 0.075,
            Size::Large => 0.13,
        }
    }
}

/// How far the side anchors sit from the image border, as a fraction of the side: the
/// centres of the outer cells of a 3×3 grid, so the five positions are five cells' centres
/// (a model whose patches are a third of the image sees each object in one patch).
const SIDE: f32 = 1.0 / 6.0;

impl Position {
    /// The anchor (x, y) as fractions of the image side, y pointing down.
    pub fn anchor(self) -> (f32, f32) {
        match self {
            Position::Left => (SIDE, 0.5),
            Position::Right => (1.0 - SIDE, 0.5),
            Position::Top => (0.5, SIDE),
            Position::Bottom => (0.5, 1.0 - SIDE),
            Position::Centre => (0.5, 0.5),
        }
    }

    /// The phrase captions use: "on the left", "at the top", "in the centre".
    pub fn phrase(self) -> &'static str {
        match self {
            Position::Left => "on the left",
            Position::Right => "on the right",
            Position::Top => "at the top",
            Position::Bottom => "at the bottom",
            Position::Centre => "in the centre",
        }
    }
}

/// Background colours: muted, darker than every object colour's brightest channel and far
/// from each of them, so every object stands out.
pub const BACKGROUNDS: [[u8; 3]; 5] = [
    [60, 60, 60],
    [95, 95, 100],
    [50, 60, 80],
    [80, 85, 60],
    [90, 70, 60],
];

/// The (colour, shape) combinations that never appear in the training split: one per
/// colour, every shape held out at least once, so a model must compose a colour it knows
/// with a shape it knows to name them.
pub fn held_out_combinations() -> &'static [(Colour, Shape)] {
    const HELD_OUT: [(Colour, Shape); HELD_OUT_COUNT] = [
        (Colour::Red, Shape::Star),
        (Colour::Green, Shape::Heart),
        (Colour::Blue, Shape::Triangle),
        (Colour::Yellow, Shape::Circle),
        (Colour::Purple, Shape::Square),
        (Colour::Orange, Shape::Hexagon),
        (Colour::Pink, Shape::Cross),
        (Colour::White, Shape::Star),
    ];
    &HELD_OUT
}

/// How many (colour, shape) combinations [`held_out_combinations`] holds out.
pub const HELD_OUT_COUNT: usize = 8;

/// Whether a combination is held out of training.
pub fn is_held_out(colour: Colour, shape: Shape) -> bool {
    held_out_combinations().contains(&(colour, shape))
}

/// The most objects of one kind (and in all) a scene holds.
pub const MAX_COUNT: usize = 3;

/// The caption words for counts one to [`MAX_COUNT`]: `COUNT_WORDS[count - 1]`.
pub const COUNT_WORDS: [&str; MAX_COUNT] = ["one", "two", "three"];
