//! The shop's catalogue and its words in each language.

pub(crate) struct Product {
    pub(crate) id: usize,
    pub(crate) category: &'static str,
    /// Names in en, de, fr, it.
    pub(crate) names: [&'static str; 4],
    pub(crate) price_cents: u32,
    pub(crate) colour: &'static str,
}

pub(crate) struct Category {
    pub(crate) slug: &'static str,
    pub(crate) names: [&'static str; 4],
}

pub(crate) const CATEGORIES: &[Category] = &[
    Category { slug: "toys", names: ["Toys", "Spielzeug", "Jouets", "Giocattoli"] },
    Category { slug: "books", names: ["Books", "Bücher", "Livres", "Libri"] },
    Category { slug: "electronics", names: ["Electronics", "Elektronik", "Électronique", "Elettronica"] },
    Category { slug: "christmas", names: ["Christmas", "Weihnachten", "Noël", "Natale"] },
];

pub(crate) const PRODUCTS: &[Product] = &[
    Product {
        id: 1,
        category: "toys",
        names: ["Wooden train set", "Holzeisenbahn", "Train en bois", "Trenino di legno"],
        price_cents: 3999,
        colour: "#b5651d",
    },
    Product {
        id: 2,
        category: "toys",
        names: ["Teddy bear", "Teddybär", "Ours en peluche", "Orsacchiotto"],
        price_cents: 1999,
        colour: "#c68642",
    },
    Product {
        id: 3,
        category: "toys",
        names: ["Building blocks", "Bausteine", "Jeu de construction", "Mattoncini"],
        price_cents: 4999,
        colour: "#d62828",
    },
    Product {
        id: 4,
        category: "books",
        names: ["A Christmas Carol", "Eine Weihnachtsgeschichte", "Un chant de Noël", "Canto di Natale"],
        price_cents: 899,
        colour: "#264653",
    },
    Product {
        id: 5,
        category: "books",
        names: ["Cookbook for winter", "Winterkochbuch", "Cuisine d'hiver", "Cucina d'inverno"],
        price_cents: 2499,
        colour: "#2a9d8f",
    },
    Product {
        id: 6,
        category: "books",
        names: ["Atlas of Europe", "Europaatlas", "Atlas de l'Europe", "Atlante d'Europa"],
        price_cents: 2999,
        colour: "#e9c46a",
    },
    Product {
        id: 7,
        category: "electronics",
        names: ["E-reader", "E-Book-Reader", "Liseuse", "E-reader"],
        price_cents: 9999,
        colour: "#333333",
    },
    Product {
        id: 8,
        category: "electronics",
        names: ["Headphones", "Kopfhörer", "Casque audio", "Cuffie"],
        price_cents: 5999,
        colour: "#555555",
    },
    Product {
        id: 9,
        category: "electronics",
        names: ["Digital camera", "Digitalkamera", "Appareil photo", "Fotocamera"],
        price_cents: 19999,
        colour: "#1d3557",
    },
    Product {
        id: 10,
        category: "christmas",
        names: ["Advent calendar", "Adventskalender", "Calendrier de l'Avent", "Calendario dell'Avvento"],
        price_cents: 1499,
        colour: "#9d0208",
    },
    Product {
        id: 11,
        category: "christmas",
        names: ["Star ornament", "Weihnachtsstern", "Étoile de Noël", "Stella di Natale"],
        price_cents: 699,
        colour: "#ffb703",
    },
    Product {
        id: 12,
        category: "christmas",
        names: ["Gingerbread", "Lebkuchen", "Pain d'épices", "Pan di zenzero"],
        price_cents: 499,
        colour: "#8d5524",
    },
];

pub(crate) fn product(id: usize) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.id == id)
}

pub(crate) fn category(slug: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.slug == slug)
}

/// Words of the shop's pages.
pub(crate) struct Texts {
    pub(crate) lang_index: usize,
    pub(crate) welcome: &'static str,
    pub(crate) categories: &'static str,
    pub(crate) search: &'static str,
    pub(crate) results_for: &'static str,
    pub(crate) add_to_cart: &'static str,
    pub(crate) cart: &'static str,
    pub(crate) empty_cart: &'static str,
    pub(crate) checkout: &'static str,
    pub(crate) order_placed: &'static str,
    pub(crate) order_repeated: &'static str,
    pub(crate) not_found: &'static str,
    pub(crate) busy: &'static str,
    pub(crate) served_from: &'static str,
}

const EN: Texts = Texts {
    lang_index: 0,
    welcome: "Christmas gifts for everyone",
    categories: "Categories",
    search: "Search",
    results_for: "Results for",
    add_to_cart: "Add to cart",
    cart: "Your cart",
    empty_cart: "Your cart is empty.",
    checkout: "Place order",
    order_placed: "Thank you! Your order has been placed:",
    order_repeated: "This order was already placed:",
    not_found: "Page not found.",
    busy: "We are very busy right now. Please try again in a moment.",
    served_from: "Served from",
};
const DE: Texts = Texts {
    lang_index: 1,
    welcome: "Weihnachtsgeschenke für alle",
    categories: "Kategorien",
    search: "Suche",
    results_for: "Ergebnisse für",
    add_to_cart: "In den Warenkorb",
    cart: "Ihr Warenkorb",
    empty_cart: "Ihr Warenkorb ist leer.",
    checkout: "Bestellung aufgeben",
    order_placed: "Vielen Dank! Ihre Bestellung wurde aufgegeben:",
    order_repeated: "Diese Bestellung wurde bereits aufgegeben:",
    not_found: "Seite nicht gefunden.",
    busy: "Wir sind gerade sehr ausgelastet. Bitte versuchen Sie es gleich noch einmal.",
    served_from: "Ausgeliefert von",
};
const FR: Texts = Texts {
    lang_index: 2,
    welcome: "Des cadeaux de Noël pour tous",
    categories: "Catégories",
    search: "Rechercher",
    results_for: "Résultats pour",
    add_to_cart: "Ajouter au panier",
    cart: "Votre panier",
    empty_cart: "Votre panier est vide.",
    checkout: "Passer la commande",
    order_placed: "Merci ! Votre commande a été passée :",
    order_repeated: "Cette commande a déjà été passée :",
    not_found: "Page introuvable.",
    busy: "Nous sommes très sollicités. Veuillez réessayer dans un instant.",
    served_from: "Servi depuis",
};
const IT: Texts = Texts {
    lang_index: 3,
    welcome: "Regali di Natale per tutti",
    categories: "Categorie",
    search: "Cerca",
    results_for: "Risultati per",
    add_to_cart: "Aggiungi al carrello",
    cart: "Il tuo carrello",
    empty_cart: "Il carrello è vuoto.",
    checkout: "Effettua l'ordine",
    order_placed: "Grazie! Il tuo ordine è stato effettuato:",
    order_repeated: "Questo ordine è già stato effettuato:",
    not_found: "Pagina non trovata.",
    busy: "Siamo molto occupati. Riprova tra un momento.",
    served_from: "Servito da",
};

pub(crate) fn texts(language: &str) -> &'static Texts {
    match language.get(..2).unwrap_or("") {
        "de" => &DE,
        "fr" => &FR,
        "it" => &IT,
        _ => &EN,
    }
}
