// Side-effect imports of stylesheets, which Vite bundles into the CSS asset.
declare module "*.css";
